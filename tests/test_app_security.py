"""The labeling app's HTTP surface, driven without a browser: what an anonymous visitor, a labeler
with a hand-made request, and an admin can and cannot get. The page's own protocol (log in, then
POST /gradio_api/queue/join and read /gradio_api/queue/data) comes from `PageSession` in
benchmarks/label_load.py, which the load benchmark uses too."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import httpx
import pytest

from labeling_app.app import build_app, serve
from rlhf.store import LabelStore

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("label_load", ROOT / "benchmarks" / "label_load.py")
label_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(label_load)
PageSession, submit_data, shown_item = label_load.PageSession, label_load.submit_data, label_load.shown_item

SECRET = "Quokka-7731"  # appears in every prompt: any response holding it leaked an item
ITEMS = [{"id": f"q{i}", "prompt": f"{SECRET} question {i}",
          "completions": [f"{SECRET} answer {i}.{j}" for j in range(4)]} for i in range(1, 4)]


@pytest.fixture
def app(tmp_path):
    store = LabelStore(tmp_path / "labels.db", labels_per_item=2, guideline_version="v1", seed=0)
    for name, role in (("alice", "labeler"), ("bob", "labeler"), ("admin", "admin")):
        store.add_user(name, f"pw-{name}", role)
    store.add_items(ITEMS)
    demo = build_app(store, "# Guidelines", "v1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve(demo, store, host="127.0.0.1", port=port, block=False)
    yield demo, store, f"http://127.0.0.1:{port}"
    demo.close()
    store.close()


def session(url: str, name: str) -> PageSession:
    page = PageSession(url)
    assert page.login(name, f"pw-{name}")
    return page


def test_anonymous_requests_get_no_page_data_or_api(app):
    demo, _, url = app
    with httpx.Client(base_url=url) as anon:
        home = anon.get("/")
        assert home.status_code == 200 and '"auth_required":true' in home.text and SECRET not in home.text
        for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/queue/data?session_hash=x",
                     "/gradio_api/file=/etc/hostname", "/gradio_api/upload_progress?upload_id=x"):
            response = anon.get(path)
            assert response.status_code == 401, path
            assert SECRET not in response.text
        for fn in demo.fns.values():
            body = {"data": [], "fn_index": fn._id, "session_hash": "anon0001"}
            assert anon.post("/gradio_api/queue/join", json=body).status_code == 401
            for route in ("call", "run", "api"):
                response = anon.post(f"/gradio_api/{route}/{fn.api_name}", json={"data": []})
                assert response.status_code == 401, (route, fn.api_name)
                assert SECRET not in response.text
        wrong = anon.post("/login", data={"username": "alice", "password": "not her password"})
        assert wrong.status_code == 400 and not anon.cookies
        assert anon.get("/config").status_code == 401


def test_events_are_private(app):
    _, _, url = app
    page = session(url, "alice")
    info = page.http.get("/gradio_api/info").json()
    assert info["named_endpoints"] == {} and info["unnamed_endpoints"] == {}
    assert page.http.get("/gradio_api/info", params={"all_endpoints": "true"}).json()["named_endpoints"] == {}
    page.close()


def test_identity_is_the_session_not_the_request(app):
    _, store, url = app
    alice, bob = session(url, "alice"), session(url, "bob")
    loaded = alice.call("load")
    mine = shown_item(loaded)
    assert mine["item_id"] == "q1" and "Signed in as <b>alice</b>" in loaded["outputs"]["rlhf-header"]

    # bob replays alice's item and token (and claims to be alice in the body): refused
    forged = submit_data(loaded["outputs"]["item"], [1, 2, 3, 4])
    bob.call("load")
    for extra in (None, {"username": "alice"}):
        result = bob.call("submit", forged, extra=extra)
        assert result["ok"] and result["outputs"]["status"].startswith("Not saved: this item is not assigned to you")
    assert bob.call("skip", [loaded["outputs"]["item"], "spite"])["outputs"]["status"].startswith("Not skipped")
    assert bob.call("undo")["outputs"]["status"].startswith("Nothing to undo")
    assert store.label_count() == 0

    # alice's own item and token still work; a wrong K from the page cannot save a partial ranking
    bad_k = alice.call("submit", submit_data(json.dumps({**mine, "k": 3}), [1, 2, 3]))
    assert bad_k["outputs"]["status"].startswith("Not saved")
    saved = alice.call("submit", forged)
    assert saved["outputs"]["status"].startswith("Saved item q1")
    assert [(r["labeler"], r["item_id"]) for r in store.rankings()] == [("alice", "q1")]
    alice.close()
    bob.close()


def test_repeated_submit_is_a_no_op(app):
    _, store, url = app
    bob = session(url, "bob")
    loaded = bob.call("load")
    assert shown_item(loaded)["item_id"] == "q1"
    data = submit_data(loaded["outputs"]["item"], [2, 1, 1, 3])
    first, second = bob.call("submit", data), bob.call("submit", data)  # a double click
    assert first["outputs"]["status"].startswith("Saved item q1")
    assert second["outputs"]["status"].startswith("Saved item q1")
    assert shown_item(second)["item_id"] == shown_item(first)["item_id"] == "q2"
    rows = [r for r in store.rankings() if r["labeler"] == "bob"]
    assert len(rows) == 1 and len(rows[0]["ranking"]) == 3  # ranks made dense: [2, 1, 1, 3] -> 3 tiers
    bob.close()


def test_admin_handlers_refuse_labelers(app):
    _, store, url = app
    alice = session(url, "alice")
    alice.call("load")
    for name, data in (("admin_open", []), ("admin_refresh", []), ("export_rankings", [True]),
                       ("export_pairs", [True])):
        result = alice.call(name, data)
        assert not result["ok"] and "Only an admin" in result["error"], name
        assert result["outputs"] == {} and SECRET not in json.dumps(result)
    alice.close()

    admin = session(url, "admin")
    admin.call("load")
    refreshed = admin.call("admin_refresh")
    assert refreshed["ok"] and "labels" in refreshed["outputs"]["admin-summary"]
    exported = admin.call("export_rankings", [True])
    assert exported["ok"]
    assert exported["outputs"]["admin-status"].startswith(f"Exported {store.label_count()} ranking rows")
    file_url = exported["outputs"]["export-file"]["url"]
    rows = [json.loads(line) for line in admin.http.get(file_url).text.splitlines()]
    assert len(rows) == store.label_count() and all(SECRET in r["prompt"] for r in rows)
    with httpx.Client() as anon:  # the export file itself needs a login too
        assert anon.get(file_url).status_code == 401
    admin.close()


def test_logout_ends_the_session(app):
    _, _, url = app
    page = session(url, "bob")
    assert page.http.get("/config").status_code == 200
    page.http.get("/logout")
    assert page.http.get("/config").status_code == 401
    page.close()


def _join(page: PageSession, api_name: str, session_hash: str, data: list | None = None):
    """POST /gradio_api/queue/join for the page's event `api_name`, naming `session_hash`."""
    dep = page.deps[api_name]
    body = {"data": list(data or []), "fn_index": dep["id"], "session_hash": session_hash, "event_data": None,
            "trigger_id": dep["targets"][0][0] if dep.get("targets") else None}
    return page.http.post("/gradio_api/queue/join", json=body)


def _stream(page: PageSession, session_hash: str) -> tuple[int, str]:
    """Status and whole body of /gradio_api/queue/data for `session_hash` (the stream closes once
    the session's last pending event completed)."""
    with page.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        return stream.status_code, stream.read().decode()


def test_a_session_hash_serves_only_the_user_who_opened_it(app):
    """Bob learns Alice's session hash: he can neither read her event stream (her item and token)
    nor join, cancel or keep alive events on it; Alice still gets her own result."""
    _, store, url = app
    alice, bob = session(url, "alice"), session(url, "bob")
    assert _join(alice, "load", alice.session_hash).status_code == 200  # the hash is Alice's from here on
    status, body = _stream(bob, alice.session_hash)  # before Alice reads her own stream
    assert status == 403 and SECRET not in body and "token" not in body
    assert _join(bob, "load", alice.session_hash).status_code == 403
    assert bob.http.get(f"/gradio_api/heartbeat/{alice.session_hash}").status_code == 403
    cancel = {"session_hash": alice.session_hash, "fn_index": alice.deps["load"]["id"], "event_id": "x"}
    assert bob.http.post("/gradio_api/cancel", json=cancel).status_code == 403
    with httpx.Client(base_url=url) as anon:  # the two routes Gradio leaves open without a login
        assert anon.post("/gradio_api/cancel", json=cancel).status_code == 403
        assert anon.get(f"/gradio_api/heartbeat/{alice.session_hash}").status_code == 403

    status, body = _stream(alice, alice.session_hash)
    assert status == 200 and f"{SECRET} question 1" in body and '"token' in body
    # Bob's own session works as before, and Alice cannot take his hash either
    assert shown_item(bob.call("load"))["item_id"] == "q1"
    assert _stream(alice, bob.session_hash)[0] == 403
    assert store.label_count() == 0
    alice.close()
    bob.close()


def test_export_links_work_only_for_an_admin(app):
    _, _, url = app
    admin, alice = session(url, "admin"), session(url, "alice")
    alice.call("submit", submit_data(alice.call("load")["outputs"]["item"], [1, 2, 3, 4]))
    admin.call("load")
    exported = admin.call("export_pairs", [True])
    file_url = exported["outputs"]["export-file"]["url"]
    download = admin.http.get(file_url)
    assert download.status_code == 200 and SECRET in download.text
    leaked = alice.http.get(file_url)
    assert leaked.status_code == 403 and SECRET not in leaked.text
    admin.close()
    alice.close()
