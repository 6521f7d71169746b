"""Load test of the labeling app: many labelers submitting at once, over HTTP, for minutes.

    python benchmarks/label_load.py                     # 50 labelers, 120 s, 5 s mean think time
    python benchmarks/label_load.py --think 1           # a stress pace: ~50 submits/s offered
    python benchmarks/label_load.py --seconds 20 --labelers 10

The app runs in a child process on 127.0.0.1 (a fresh SQLite store in a temp folder); each
simulated labeler is a thread holding its own login cookie and driving the page's events exactly
as the browser's JavaScript does (`PageSession`). A labeler loads its item, "thinks" for a random
0..2x`--think` seconds, submits a random ranking (ties included), and goes on with the next item
the response carries. A person needs 10-60 s to read and rank four responses; the default mean
of 5 s is a team working several times faster than that (50 labelers offer ~10 submits/s). A
share of submits (`--repeat`) is sent twice with the same token, as a double click would. Submit
latency is measured from the POST that joins the queue to the message that the event completed
(what the page waits for); the timed window starts once every labeler is logged in and loaded.

At the end every submit the app confirmed ("Saved item X") is matched against the store's rows:
lost = confirmed but not stored, duplicated = stored more than once or an item over its N labels.
Results go to benchmarks/results/label_load.json. The server also times each store call, to show
where the time of a submit goes (store vs. Gradio's queue and HTTP).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "label_load.json"


# --- the page's protocol over plain HTTP ------------------------------------------------------


class PageSession:
    """One browser tab, over HTTP: log in (Gradio's session cookie), read /config, then trigger the
    page's events by their api_name the way Gradio's JavaScript does: POST /gradio_api/queue/join,
    then read the Server-Sent Events of /gradio_api/queue/data until that event completes."""

    def __init__(self, base_url: str, timeout: float = 60.0):
        import httpx

        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.timeout = timeout
        self.session_hash = secrets.token_hex(8)
        self.deps: dict[str, dict] = {}
        self.elem_ids: dict[int, str | None] = {}

    def login(self, name: str, password: str) -> bool:
        if self.http.post("/login", data={"username": name, "password": password}).status_code != 200:
            return False
        config = self.http.get("/config")
        config.raise_for_status()
        config = config.json()
        self.elem_ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
        self.deps = {d["api_name"]: d for d in config["dependencies"]}
        return True

    def call(self, api_name: str, data: list | None = None, fn_index: int | None = None,
             extra: dict | None = None) -> dict:
        """Run one event (`extra`: more fields for the request body, as a forger would add).
        Returns {"ok", "outputs": {elem_id: value}, "error", "status"}; an output the handler
        left unchanged is absent from "outputs"."""
        dep = self.deps.get(api_name, {})
        index = dep.get("id") if fn_index is None else fn_index
        trigger = dep["targets"][0][0] if dep.get("targets") else None
        body = {"data": list(data or []), "fn_index": index, "session_hash": self.session_hash,
                "event_data": None, "trigger_id": trigger, **(extra or {})}
        joined = self.http.post("/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return {"ok": False, "status": joined.status_code, "error": joined.text, "outputs": {}}
        event_id = joined.json()["event_id"]
        # Gradio's heartbeats keep the stream alive, so the read timeout never fires: keep a deadline
        # of our own, so a reply that never comes fails the call instead of hanging it.
        deadline = time.monotonic() + self.timeout
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if time.monotonic() > deadline:
                    return {"ok": False, "status": 200, "error": f"no reply within {self.timeout} s", "outputs": {}}
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    return self._completed(msg, dep.get("outputs", []))
        return {"ok": False, "status": 200, "error": "the event stream ended before the event did", "outputs": {}}

    def _completed(self, msg: dict, output_ids: list[int]) -> dict:
        output = msg.get("output") or {}
        if not msg.get("success"):
            return {"ok": False, "status": 200, "error": output.get("error") or json.dumps(output), "outputs": {}}
        outputs = {}
        for comp_id, value in zip(output_ids, output.get("data", [])):
            if isinstance(value, dict) and value.get("__type__") == "update":
                if "value" not in value:
                    continue
                value = value["value"]
            outputs[self.elem_ids.get(comp_id) or comp_id] = value
        return {"ok": True, "status": 200, "error": None, "outputs": outputs}

    def close(self) -> None:
        self.http.close()


def submit_data(item: str, ranks: list, flags=(), comment: str = "") -> list:
    """The inputs of the page's `submit` event as its browser code sends them: the item JSON the
    page was given, the ranks read off its radios (a JSON list), the flags and the comment."""
    return [item, json.dumps(ranks), list(flags), comment]


def shown_item(result: dict) -> dict:
    """The item an event's response put on the page ({} if it sent none, {"k": 0} if none is left)."""
    return json.loads(result["outputs"].get("item") or "{}")


# --- the server (child process) ---------------------------------------------------------------


class TimedStore:
    """A LabelStore whose method calls are timed (seconds per call, by method name)."""

    def __init__(self, store):
        self._store, self.times, self._lock = store, {}, threading.Lock()

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                with self._lock:
                    self.times.setdefault(name, []).append(time.perf_counter() - start)
        return timed


def serve_main(db: str, port: int, stats_path: str, labels_per_item: int) -> None:
    from labeling_app.app import build_app, serve
    from rlhf.store import LabelStore

    store = TimedStore(LabelStore(db, labels_per_item=labels_per_item, guideline_version="bench"))
    demo = build_app(store, "Rank the responses.", "bench")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    serve(demo, store, host="127.0.0.1", port=port, block=False)
    print("READY", flush=True)
    stop.wait()
    Path(stats_path).write_text(json.dumps({"store_seconds": store.times}))
    os._exit(0)  # Gradio's threads need not wind down: the store committed every label already


def make_store(db: str, labelers: int, items: int, k: int, labels_per_item: int) -> None:
    from rlhf.store import LabelStore

    rng = random.Random(0)
    words = ["the", "a", "model", "answer", "helpful", "kind", "brief", "long", "reason", "because", "step"]

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    with LabelStore(db, labels_per_item=labels_per_item) as store:
        for i in range(labelers):
            store.add_user(f"labeler{i}", f"pw-{i}")
        store.add_items([{"id": f"item{i:05d}", "prompt": text(30), "completions": [text(60) for _ in range(k)]}
                         for i in range(items)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if "READY" in line:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the app process exited with {proc.returncode}")
    raise RuntimeError("the app did not start in time")


# --- the simulated labelers -------------------------------------------------------------------


class Labeler(threading.Thread):
    def __init__(self, n: int, url: str, deadline: float, args, start_gate: threading.Barrier):
        super().__init__(daemon=True)
        self.name_, self.password = f"labeler{n}", f"pw-{n}"
        self.url, self.deadline, self.args, self.gate = url, deadline, args, start_gate
        self.rng = random.Random(n)
        self.latencies: list[float] = []
        self.load_latencies: list[float] = []
        self.confirmed: list[str] = []
        self.repeats = 0
        self.errors: list[str] = []

    def run(self) -> None:
        page, shown = PageSession(self.url), None
        try:
            shown = self._open(page)
            self.gate.wait()  # the timed window starts with every page loaded
            if shown is not None:
                self._loop(page, shown)
        except Exception as err:  # noqa: BLE001 - reported in the results, not raised in a thread
            self.errors.append(f"{type(err).__name__}: {err}")
        finally:
            page.close()

    def _open(self, page: PageSession) -> dict | None:
        """Log in and load the page (None on failure: the labeler still meets the others at the gate)."""
        try:
            if not page.login(self.name_, self.password):
                self.errors.append("login refused")
                return None
            start = time.perf_counter()
            shown = page.call("load")
            self.load_latencies.append(time.perf_counter() - start)
            return shown
        except Exception as err:  # noqa: BLE001 - reported in the results
            self.errors.append(f"{type(err).__name__}: {err}")
            return None

    def _loop(self, page: PageSession, shown: dict) -> None:
        for _ in range(self.args.max_submits):
            item = shown_item(shown) if shown["ok"] else {}
            if not item.get("item_id"):
                self.errors += [] if shown["ok"] else [shown["error"]]
                return
            time.sleep(max(0.0, min(self.rng.uniform(0, 2 * self.args.think), self.deadline - time.time())))
            if time.time() >= self.deadline:
                return
            k = item["k"]
            ranks = [self.rng.randint(1, k) for _ in range(k)]  # any ranks: the app makes them dense
            data = submit_data(shown["outputs"]["item"], ranks)
            start = time.perf_counter()
            result = page.call("submit", data)
            self.latencies.append(time.perf_counter() - start)
            status = result["outputs"].get("status") or ""
            if not result["ok"] or not status.startswith(f"Saved item {item['item_id']} "):
                self.errors.append(result["error"] or status)
                return
            self.confirmed.append(item["item_id"])
            if self.rng.random() < self.args.repeat:  # a double click: same token again
                again = page.call("submit", data)
                self.repeats += 1
                if not again["ok"]:
                    self.errors.append(again["error"])
            shown = result


# --- run and report ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")


def audit(db: str, labelers: list[Labeler], labels_per_item: int) -> dict:
    """Every confirmed submit in the store exactly once; no item over N labels."""
    from collections import Counter

    from rlhf.store import LabelStore

    with LabelStore(db, labels_per_item=labels_per_item) as store:
        rows = store.rankings(include_flagged=True)
    stored = Counter((r["labeler"], r["item_id"]) for r in rows)
    confirmed = Counter((lab.name_, item) for lab in labelers for item in lab.confirmed)
    per_item = Counter(r["item_id"] for r in rows)
    return {
        "confirmed_submits": sum(confirmed.values()),
        "stored_labels": len(rows),
        "lost": sum(1 for key in confirmed if key not in stored),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1) + sum(n - 1 for n in confirmed.values() if n > 1),
        "stored_but_not_confirmed": sum(1 for key in stored if key not in confirmed),
        "items_over_n_labels": sum(1 for n in per_item.values() if n > labels_per_item),
    }


def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="rlhf-label-load-"))
    db, stats_path, port = str(workdir / "labels.db"), str(workdir / "server_times.json"), free_port()
    make_store(db, args.labelers, args.items, args.k, args.labels_per_item)
    cmd = [sys.executable, __file__, "--serve", db, "--port", str(port), "--stats", stats_path,
           "--labels-per-item", str(args.labels_per_item)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(proc)
        url = f"http://127.0.0.1:{port}"
        gate = threading.Barrier(args.labelers + 1)
        deadline = time.time() + 10**9
        labelers = [Labeler(n, url, deadline, args, gate) for n in range(args.labelers)]
        for lab in labelers:
            lab.start()
        gate.wait(timeout=300)  # every labeler logged in and loaded its page: not part of the figures
        started, cpu_start, client_start = time.time(), cpu_seconds(proc.pid), time.process_time()
        for lab in labelers:
            lab.deadline = started + args.seconds
        for lab in labelers:
            lab.join(timeout=args.seconds + 120)
        elapsed, server_cpu = time.time() - started, cpu_seconds(proc.pid) - cpu_start
        client_cpu = time.process_time() - client_start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    cpu = {"server_cpu_share": round(server_cpu / elapsed, 2), "client_cpu_share": round(client_cpu / elapsed, 2)}
    return report(args, labelers, elapsed, server_cpu, cpu, audit(db, labelers, args.labels_per_item), stats_path)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(args, labelers: list[Labeler], elapsed: float, server_cpu: float, cpu: dict, checks: dict,
           stats_path: str) -> dict:
    lat = [x for lab in labelers for x in lab.latencies]
    loads = [x for lab in labelers for x in lab.load_latencies]
    server = json.loads(Path(stats_path).read_text()) if Path(stats_path).exists() else {}
    store_times = server.get("store_seconds", {})
    events = sum(len(lab.latencies) + lab.repeats + len(lab.load_latencies) for lab in labelers)

    def ms(xs: list[float], q: float) -> float:
        return round(1000 * percentile(xs, q), 1)

    result = {
        "labelers": args.labelers, "seconds": round(elapsed, 1), "think_mean_s": args.think,
        "items": args.items, "k": args.k, "labels_per_item": args.labels_per_item,
        "submits": len(lat), "repeat_submits": sum(lab.repeats for lab in labelers),
        "submits_per_second": round(len(lat) / elapsed, 2) if elapsed else None,
        "submit_ms": {"p50": ms(lat, 50), "p95": ms(lat, 95), "p99": ms(lat, 99), "max": ms(lat, 100)},
        "load_ms": {"p50": ms(loads, 50), "p95": ms(loads, 95)},
        "server_store_ms": {name: {"calls": len(v), "p50": ms(v, 50), "p95": ms(v, 95)}
                            for name, v in sorted(store_times.items())},
        "server_cpu_ms_per_event": round(1000 * server_cpu / max(events, 1), 1),
        **cpu,  # cores' worth of CPU the server and the simulated labelers used
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "errors": [e for lab in labelers for e in lab.errors][:20],
        "error_count": sum(len(lab.errors) for lab in labelers),
        **checks,
        "goal_p95_ms": 150, "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelers", type=int, default=50, help="simulated labelers (threads)")
    parser.add_argument("--seconds", type=float, default=120, help="how long the labelers submit")
    parser.add_argument("--think", type=float, default=5.0, help="mean think time per item, seconds (0 = flat out)")
    parser.add_argument("--repeat", type=float, default=0.05, help="share of submits sent twice (double click)")
    parser.add_argument("--items", type=int, default=4000, help="items in the store")
    parser.add_argument("--k", type=int, default=4, help="completions per item")
    parser.add_argument("--labels-per-item", type=int, default=3, help="labels each item needs (N)")
    parser.add_argument("--max-submits", type=int, default=100_000, help="bound on each labeler's loop")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the results (JSON)")
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_main(args.serve, args.port, args.stats, args.labels_per_item)
        return 0
    result = run(args)
    print(json.dumps(result, indent=2))
    s = result["submit_ms"]
    print(f"\n{result['submits']} submits in {result['seconds']} s by {args.labelers} labelers: "
          f"{result['submits_per_second']} submits/s; submit latency p50 {s['p50']} ms, p95 {s['p95']} ms, "
          f"p99 {s['p99']} ms (goal p95 < 150 ms); lost {result['lost']}, duplicated {result['duplicated']}, "
          f"errors {result['error_count']}. Written to {args.out}")
    ok = result["lost"] == 0 and result["duplicated"] == 0 and result["items_over_n_labels"] == 0
    return 0 if ok and not result["error_count"] else 1


if __name__ == "__main__":
    sys.exit(main())
