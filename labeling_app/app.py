"""The labeling app: a Gradio Blocks page over a `LabelStore`.

A labeler logs in, sees one prompt and its K completions (K = 2..9, in the order the store chose for
them), gives each completion a rank (equal ranks = a tie), and submits; the page then shows their
next item. Everything durable lives in the store: the page can be reloaded, opened in another
browser or served by a restarted process, and `store.next_item` hands back the open item.

Security model (tested in tests/test_app_security.py and tests/test_app_browser.py):
- Gradio's login (`auth=store.authenticate`) guards the page, /config and every API route; a
  visitor without a session cookie gets the login form and 401s.
- Identity is `request.username`, taken by Gradio from the session cookie on the server. No handler
  takes a user name as an input. The store checks that the item and its token belong to that user.
- Admin handlers check the role in the store on every call, not only by hiding the tab.
- A session hash belongs to the user whose request first named it: nobody else can read its
  event stream, join, cancel or keep alive events on it, and export files download for admins
  only (`labeling_app/sessions.py`, middleware on the app Gradio builds).
- Every event is `api_visibility="private"`: absent from /gradio_api/info and the client libraries.
  Gradio's queue still runs any event a logged-in page can name, which is why the checks above
  sit in the handlers themselves.
- Prompts, earlier turns of a conversation and completions are data: shown in read-only text boxes,
  never as Markdown or HTML,
  so `<script>`, `<img onerror>` or `javascript:` links render literally and run nothing.

Speed: Gradio hands every input and output of an event to a worker thread and back, and rebuilds a
component's config for any output that is not a plain value. So an item travels as ONE JSON string
(a hidden text box) that the browser spreads over the prompt, response boxes and rank radios
(`app.js`), which slots show follows K through CSS (`layout_css`), and handlers return plain
values only: a submit costs 4 outputs instead of 40.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import tempfile
import time
from pathlib import Path

import gradio as gr

from labeling_app.sessions import EXPORT_PREFIX, SessionOwners
from rlhf.store import FLAGS, Assignment, LabelStore, StoreError, User
from rlhf.store import guideline_version as file_guideline_version

MAX_K = 9
LETTERS = "ABCDEFGHI"
FLAG_CHOICES = [("unsafe", "unsafe"), ("low quality", "low_quality"), ("not rankable", "not_rankable")]
assert [v for _, v in FLAG_CHOICES] == list(FLAGS)
PAIR_CHOICES = {"a": ([1, 2], "A is better"), "b": ([2, 1], "B is better"), "tie": ([1, 1], "tie"),
                "bad": ([1, 1], "both bad")}  # "both bad" = a tie plus the low_quality flag
HERE = Path(__file__).parent
APP_JS = (HERE / "app.js").read_text(encoding="utf-8")  # one object expression, see the file
APP_CSS = (HERE / "app.css").read_text(encoding="utf-8")

SHORTCUTS_MD = """\
| key | action |
|---|---|
| `1` … `9` | give the selected response that rank, then select the next one |
| `↓` / `j`, `↑` / `k` | select the next / previous response (or click a response) |
| `Enter` or `Ctrl+Enter` | submit (`Ctrl+Enter` also works while typing a comment) |
| `s` | skip: puts the cursor in the reason box (type a reason, then `Enter`) |
| `u` | undo: re-open your last submitted label to change it |
| `Esc` | leave a text box, so the keys above work again |
| two responses: `1` / `2` / `3` / `4` | A better / B better / tie / both bad |

Equal ranks are a tie; only the order counts (ranks 1, 1, 3 mean the same as 1, 1, 2).
"Both bad" is saved as a tie with the *low quality* flag.
"""


def _js(method: str) -> str:
    """An event's `js=`: call one method of app.js with the event's inputs."""
    return f"(...args) => ({APP_JS}).{method}(...args)"


def layout_css() -> str:
    """CSS that shows what an item of K responses needs, keyed on `<body data-rlhf-k=K>` (set by
    app.js when an item arrives): K slots, rank choices 1..K, and for K = 2 the pairwise buttons
    instead of ranks; with no item (K = 0, or before the first load) no form at all."""
    rules = []
    for k in range(MAX_K + 1):
        scopes = [f'body[data-rlhf-k="{k}"]'] + (["body:not([data-rlhf-k])"] if k == 0 else [])
        hide = [f"#slot-{LETTERS[i]}" for i in range(k, MAX_K)]
        hide += [f".rlhf-rank label:nth-of-type(n+{k + 1})"]
        hide += [".rlhf-rank", "#rlhf-preview", "#submit-btn"] if k == 2 else ["#pair-row"]
        hide += ["#prompt", "#context", "#rlhf-preview", "#submit-btn", "#skip-row", "#flags", "#comment"] if k == 0 else []
        rules.append(", ".join(f"{scope} {sel}" for scope in scopes for sel in hide) + " { display: none !important; }")
    # Earlier turns of the conversation show only when the item has some (app.js sets the flag).
    rules.append('body:not([data-rlhf-context="1"]) #context { display: none !important; }')
    return "\n".join(rules)


# --- small pure helpers ----------------------------------------------------------------------


def preview_text(ranks: list[int | None]) -> str:
    """`[4, 2, 1, 2]` -> `"C > B = D > A"`; unranked positions are listed after. The rule of
    app.js's `preview`, used for the banner of a re-opened label and in tests."""
    tiers: dict[int, list[str]] = {}
    missing = []
    for i, rank in enumerate(ranks):
        if rank is None or rank == "":
            missing.append(LETTERS[i])
        else:
            tiers.setdefault(int(rank), []).append(LETTERS[i])
    text = " > ".join(" = ".join(tiers[r]) for r in sorted(tiers))
    if not missing:
        return text
    return (text + "   " if text else "") + f"(not ranked yet: {', '.join(missing)})"


def item_json(a: Assignment | None) -> str:
    """What the page needs of an assignment, as the JSON string app.js's `show` reads: the item
    and its token, the prompt and responses in display order, and a re-opened label's answers."""
    if a is None:
        return json.dumps({"k": 0})
    prev = a.previous or {}
    return json.dumps({"item_id": a.item_id, "token": a.token, "k": len(a.completions), "prompt": a.prompt,
                       "context": context_text(a.earlier_turns),
                       "completions": a.completions, "ranks": prev.get("ranks"), "flags": prev.get("flags") or [],
                       "comment": prev.get("comment") or ""}, ensure_ascii=False)


ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def context_text(turns: list[dict]) -> str:
    """The conversation before the prompt as plain text, one "Role: text" block per message, for a
    read-only text box above the prompt (never HTML: it is data, like every model text)."""
    return "\n\n".join(f"{ROLE_NAMES.get(m['role'], m['role'])}: {m['content']}" for m in turns)


def dense_ranks(ranks: list[int]) -> list[int]:
    """Only the order of ranks matters to a labeler: `[1, 1, 3, 4]` -> `[1, 1, 2, 3]`, the dense
    form the store requires (it refuses gaps)."""
    order = {r: i + 1 for i, r in enumerate(sorted(set(ranks)))}
    return [order[r] for r in ranks]


def load_guidelines(path: str | Path | None) -> tuple[str, str]:
    """(Markdown, version) of the guidelines file; None = the guidelines shipped with rlhf.
    The version is what the file declares, else a hash of its text (`store.guideline_version`)."""
    if path is None:
        try:
            from rlhf.data import builtin

            path = builtin("guidelines")
        except FileNotFoundError:
            return "Rank the responses from best to worst; give equal ranks to equally good ones.", "builtin-0"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"guidelines file {path} not found")
    from rlhf.data import read_text

    return read_text(path), file_guideline_version(path)


def _progress_html(mine: dict, project: dict) -> str:
    """Two progress bars: this labeler's share of what they can label, and the project's labels."""
    my_total = mine["done"] + mine["available"]
    target = max(project["target"], 1)
    pct = 100 * project["labels"] / target
    return (
        '<div class="rlhf-progress" id="rlhf-progress">'
        f'<span>You: <b>{mine["done"]}</b> labeled, {mine["skipped"]} skipped, {mine["available"]} left</span>'
        f'<progress id="my-progress" value="{mine["done"]}" max="{max(my_total, 1)}"></progress>'
        f'<span>Project: <b>{project["labels"]}</b> / {project["target"]} labels ({pct:.0f} %), '
        f'{project["complete_items"]} of {project["items"]} items complete</span>'
        f'<progress id="project-progress" value="{project["labels"]}" max="{target}"></progress></div>'
    )


def _cell(value, limit: int = 300) -> str:
    """A table cell as plain text, shortened: the admin tables show labeler and model text."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    if isinstance(value, float):
        value = f"{value:.3f}"
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the page --------------------------------------------------------------------------------


def build_app(store: LabelStore, guidelines_md: str, guideline_version: str) -> gr.Blocks:
    """The Blocks page (not launched). Serve it with `serve(demo, store, ...)` or `launch`."""
    with gr.Blocks(title="rlhf labeling", analytics_enabled=False) as demo:
        ui = _layout(guidelines_md, guideline_version)
        _wire(demo, store, ui)
    return demo


class _UI:
    """The components of the page, by name (filled by `_layout`)."""


class _Recent:
    """`fn()`, recomputed at most every `seconds`. The project's totals are the same for every
    labeler: one query every few seconds serves a whole team instead of one per submit."""

    def __init__(self, fn, seconds: float):
        self.fn, self.seconds, self.value, self.at = fn, seconds, None, float("-inf")

    def __call__(self):
        now = time.monotonic()
        if now - self.at > self.seconds:  # two threads may both refresh: harmless
            self.value, self.at = self.fn(), now
        return self.value


def _layout(guidelines_md: str, guideline_version: str) -> _UI:
    ui = _UI()
    ui.header = gr.HTML(elem_id="rlhf-header")
    ui.progress = gr.HTML(elem_id="rlhf-progress-box")
    with gr.Accordion(f"Guidelines (version {guideline_version})", open=False, elem_id="guidelines"):
        gr.Markdown(guidelines_md)  # written by the project's admins, not by a model
    with gr.Accordion("Keyboard shortcuts", open=False, elem_id="shortcuts"):
        gr.Markdown(SHORTCUTS_MD)
    with gr.Tabs():
        with gr.Tab("Label", id="label"):
            _label_tab(ui)
        with gr.Tab("Admin", id="admin", visible=False, elem_id="admin-tab") as ui.admin_tab:
            _admin_tab(ui)
    return ui


def _label_tab(ui: _UI) -> None:
    ui.item_info = gr.HTML(elem_id="item-info")
    # The item as JSON (see item_json); the store checks its id and token against the user.
    ui.item = gr.Textbox(visible="hidden", elem_id="item")
    # Model text goes into read-only text boxes: rendered as text, never parsed as HTML/Markdown.
    ui.context = gr.Textbox(label="Earlier in the conversation (context, not to be ranked)", interactive=False,
                            lines=2, max_lines=12, elem_id="context", elem_classes="rlhf-context")
    ui.prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, max_lines=12, elem_id="prompt")
    ui.texts, ui.ranks = [], []
    with gr.Row(elem_id="slots"):  # columns wrap: two side by side on a laptop screen
        for letter in LETTERS:
            with gr.Column(min_width=420, elem_id=f"slot-{letter}", elem_classes="rlhf-slot"):
                ui.texts.append(gr.Textbox(label=f"Response {letter}", interactive=False, lines=3, max_lines=16,
                                           elem_id=f"text-{letter}"))
                ui.ranks.append(gr.Radio(choices=list(range(1, MAX_K + 1)), label=f"Rank of {letter} (1 = best)",
                                         elem_id=f"rank-{letter}", elem_classes="rlhf-rank"))
    ui.preview = gr.Textbox(label="Your ranking, best first", interactive=False, elem_id="rlhf-preview")
    with gr.Row(elem_id="pair-row"):
        ui.pair_buttons = {key: gr.Button(text, elem_id=f"pair-{key}") for key, (_, text) in PAIR_CHOICES.items()}
    ui.flags = gr.CheckboxGroup(FLAG_CHOICES, label="Flags", elem_id="flags")
    ui.comment = gr.Textbox(label="Comment (optional)", lines=1, max_lines=6, elem_id="comment")
    with gr.Row():
        ui.submit = gr.Button("Submit (Enter)", variant="primary", elem_id="submit-btn")
        ui.undo = gr.Button("Undo last (u)", elem_id="undo-btn")
    with gr.Row(elem_id="skip-row"):
        ui.skip_reason = gr.Textbox(label="Skip reason", placeholder="e.g. needs expert knowledge; prompt unclear",
                                    scale=3, elem_id="skip-reason")
        ui.skip = gr.Button("Skip (s)", scale=1, elem_id="skip-btn")
    ui.status = gr.Textbox(label="Status", interactive=False, elem_id="status")
    ui.ranks_sent = gr.Textbox(visible="hidden", elem_id="ranks-sent")  # filled by app.js's collect


def _admin_tab(ui: _UI) -> None:
    ui.admin_refresh = gr.Button("Refresh", elem_id="admin-refresh")
    ui.admin_summary = gr.HTML(elem_id="admin-summary")
    ui.admin_labelers = gr.Dataframe(label="Labelers", interactive=False, elem_id="admin-labelers",
                                     headers=["labeler", "labeled", "skipped", "left", "pairwise agreement",
                                              "Kendall tau-b"])
    ui.admin_agreement = gr.Dataframe(label="Agreement (items with 2+ labels)", interactive=False,
                                      headers=["measure", "value"], elem_id="admin-agreement")
    ui.admin_flagged = gr.Dataframe(label="Flagged labels and skips", interactive=False, wrap=True,
                                    headers=["kind", "item", "labeler", "flags", "reason / comment", "prompt"],
                                    elem_id="admin-flagged")
    with gr.Row():
        ui.include_flagged = gr.Checkbox(label="include flagged labels in exports", elem_id="include-flagged")
        ui.export_rankings = gr.Button("Export rankings (JSONL)", elem_id="export-rankings")
        ui.export_pairs = gr.Button("Export pairs (JSONL)", elem_id="export-pairs")
    ui.export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
    ui.admin_status = gr.Textbox(label="Admin status", interactive=False, elem_id="admin-status")


# --- the labeler's events --------------------------------------------------------------------


def _user(store: LabelStore, request: gr.Request | None) -> User:
    """The logged-in user, from Gradio's server-side session (never from anything the page sends)."""
    name = getattr(request, "username", None) if request is not None else None
    user = store.get_user(name) if name else None
    if user is None:
        raise gr.Error("You are not signed in.", print_exception=False)
    return user


def _admin(store: LabelStore, request: gr.Request | None) -> User:
    user = _user(store, request)
    if user.role != "admin":
        raise gr.Error("Only an admin can do this.", print_exception=False)
    return user


class _Labeling:
    """The labeler's events. Each finds the user from `request` (Gradio's session cookie), and the
    store checks that the item and token the page sends back are that user's."""

    def __init__(self, store: LabelStore, ui: _UI):
        self.store, self.ui = store, ui
        self.project_progress = _Recent(store.progress, seconds=2.0)

    def show(self, user: User, a: Assignment | None, status: str = "") -> dict:
        """Put assignment `a` (or "nothing left") on the page, with fresh progress. Every output
        gets a plain value: Gradio treats a left-out output as a layout update, which is slow."""
        ui = self.ui
        ranks = list((a.previous or {}).get("ranks") or []) if a else []
        return {ui.item: item_json(a), ui.item_info: _item_banner(a, ranks), ui.status: status,
                ui.progress: _progress_html(self.store.progress(user.name), self.project_progress())}

    def load(self, request: gr.Request) -> dict:
        user = _user(self.store, request)
        header = (f'<div id="whoami">Signed in as <b>{html.escape(user.name)}</b> ({html.escape(user.role)}) · '
                  '<a href="/logout">log out</a></div>')
        out = self.show(user, self.store.next_item(user.name))
        return {**out, self.ui.header: header, self.ui.admin_tab: gr.update(visible=user.role == "admin")}

    def submit(self, item: str, ranks_sent: str, flags: list, comment: str, request: gr.Request) -> dict:
        user = _user(self.store, request)
        item_id, token = _assigned(item)
        ranks = _ranks(ranks_sent)
        missing = [LETTERS[i] for i, r in enumerate(ranks) if r is None]
        if not token:
            return {self.ui.status: "Nothing to submit: no item is open."}
        if missing or not ranks:
            return {self.ui.status: f"Not saved: rank every response ({', '.join(missing)} not ranked yet)."}
        return self.save(user, item_id, token, dense_ranks(ranks), flags, comment)

    def save(self, user: User, item_id: str, token: str, ranks: list[int], flags: list, comment: str) -> dict:
        try:
            saved = self.store.submit(user.name, item_id, token, ranks, flags or [], comment or "")
        except StoreError as err:
            return {self.ui.status: f"Not saved: {err}"}
        note = f"Saved item {saved['item_id']} ({saved['seconds']:.0f} s). Press u to change it."
        return self.show(user, self.store.next_item(user.name), note)

    def pair(self, choice: str):
        """The handler of one pairwise button: A better, B better, tie, or both bad (a tie flagged
        low_quality)."""
        def on_pair(item: str, flags: list, comment: str, request: gr.Request) -> dict:
            user = _user(self.store, request)
            ranks, _ = PAIR_CHOICES[choice]
            flags = sorted(set(flags or []) | ({"low_quality"} if choice == "bad" else set()))
            return self.save(user, *_assigned(item), ranks, flags, comment)
        return on_pair

    def skip(self, item: str, reason: str, request: gr.Request) -> dict:
        user = _user(self.store, request)
        item_id, token = _assigned(item)
        try:
            self.store.skip(user.name, item_id, token, reason or "")
        except StoreError as err:
            return {self.ui.status: f"Not skipped: {err}"}
        return self.show(user, self.store.next_item(user.name), f"Skipped item {item_id}.")

    def undo(self, request: gr.Request) -> dict:
        user = _user(self.store, request)
        a = self.store.undo_last(user.name)
        if a is None:
            return {self.ui.status: "Nothing to undo: you have not submitted a label yet."}
        return self.show(user, a, f"Re-opened your last label (item {a.item_id}): change it and submit.")


def _item_banner(a: Assignment | None, ranks: list) -> str:
    if a is None:
        return '<p class="rlhf-banner" id="all-done">Nothing left for you to label right now. Thank you!</p>'
    k, item = len(a.completions), html.escape(a.item_id)
    text = f"Item <code>{item}</code>: " + ("which response is better?" if k == 2 else
                                            f"rank the {k} responses (1 = best; equal ranks = tie).")
    if a.previous:
        earlier = html.escape(preview_text(ranks))
        text += f' <b id="editing">Editing your earlier label ({earlier}):</b> submit to replace it.'
    return f'<p class="rlhf-banner">{text}</p>'


def _assigned(item: str) -> tuple[str, str]:
    """(item_id, token) from the page's item JSON; the store decides whether they are this user's."""
    try:
        data = json.loads(item or "{}")
        return str(data.get("item_id") or ""), str(data.get("token") or "")
    except (ValueError, AttributeError):
        return "", ""


def _wire(demo: gr.Blocks, store: LabelStore, ui: _UI) -> None:
    """Connect the events; every one is private (not in the API docs or client libraries)."""
    on, view = _Labeling(store, ui), [ui.item, ui.item_info, ui.status, ui.progress]
    private = {"api_visibility": "private", "concurrency_id": "store"}
    demo.load(on.load, None, view + [ui.header, ui.admin_tab], api_name="load", **private)
    ui.submit.click(on.submit, [ui.item, ui.ranks_sent, ui.flags, ui.comment], view, js=_js("collect"),
                    api_name="submit", **private)
    for choice, button in ui.pair_buttons.items():
        button.click(on.pair(choice), [ui.item, ui.flags, ui.comment], view, api_name=f"pair_{choice}", **private)
    ui.skip.click(on.skip, [ui.item, ui.skip_reason], view, api_name="skip", **private)
    ui.skip_reason.submit(on.skip, [ui.item, ui.skip_reason], view, api_name="skip_enter", **private)
    ui.undo.click(on.undo, None, view, api_name="undo", **private)
    # Browser-only events (no server call): spread a new item over the form; redo the preview.
    ui.item.change(None, [ui.item], [ui.context, ui.prompt, *ui.texts, *ui.ranks, ui.flags, ui.comment, ui.skip_reason,
                                     ui.preview], js=_js("show"), api_visibility="private")
    for rank in ui.ranks:
        rank.change(None, [ui.item, *ui.ranks], ui.preview, js=_js("ranked"), api_visibility="private")
    _wire_admin(store, ui, private)


def _ranks(text: str) -> list[int | None]:
    """The ranks app.js's `collect` read off the radios (a JSON list; None = not ranked). The
    store checks the count against the item and the values against 1..K."""
    try:
        ranks = json.loads(text or "[]")
    except ValueError:
        return []
    if not isinstance(ranks, list) or len(ranks) > MAX_K:
        return []
    return [r if isinstance(r, int) and not isinstance(r, bool) else None for r in ranks]


def _wire_admin(store: LabelStore, ui: _UI, private: dict) -> None:
    """The admin's events: each checks the role in the store, whoever's page sent it."""
    admin_views = [ui.admin_summary, ui.admin_labelers, ui.admin_agreement, ui.admin_flagged]

    def on_refresh(request: gr.Request):
        _admin(store, request)
        return _admin_data(ui, store)

    def make_export(kind: str):
        def on_export(include_flagged, request: gr.Request):
            _admin(store, request)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            # The name marks it as an export: SessionOwners serves such files to admins only.
            path = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX)) / f"{EXPORT_PREFIX}{kind}-{stamp}.jsonl"
            write = store.export_rankings if kind == "rankings" else store.export_pairs
            n = write(path, include_flagged=bool(include_flagged))
            store.record_export(kind, request.username, n)
            return str(path), f"Exported {n} {kind[:-1]} rows to {path.name}."
        return on_export

    # The admin data loads when the tab opens (never for a labeler's page load: it costs queries).
    ui.admin_tab.select(on_refresh, None, admin_views, api_name="admin_open", **private)
    ui.admin_refresh.click(on_refresh, None, admin_views, api_name="admin_refresh", **private)
    for kind, button in (("rankings", ui.export_rankings), ("pairs", ui.export_pairs)):
        button.click(make_export(kind), [ui.include_flagged], [ui.export_file, ui.admin_status],
                     api_name=f"export_{kind}", **private)


def _admin_data(ui: _UI, store: LabelStore) -> dict:
    """Progress per labeler, agreement and the flagged queue, as plain-text tables."""
    project, agreement = store.progress(), store.agreement()
    per = agreement.get("per_labeler", {})
    labelers = []
    for user in store.users():
        if user.role != "labeler" and user.name not in project["per_labeler"]:
            continue
        mine, theirs = store.progress(user.name), per.get(user.name, {})
        labelers.append([user.name, mine["done"], mine["skipped"], mine["available"],
                         _cell(theirs.get("pairwise_agreement")), _cell(theirs.get("kendall_tau_b"))])
    measures = [[name, _cell(agreement.get(name))] for name in
                ("items", "comparisons", "pairwise_agreement", "kendall_tau_b", "krippendorff_alpha")]
    flagged = [[r["kind"], _cell(r["item_id"]), _cell(r["labeler"]), _cell(r["flags"]),
                _cell(r["reason"] or r["comment"]), _cell(r["prompt"], 120)] for r in store.flagged()]
    pct = 100 * project["labels"] / max(project["target"], 1)
    summary = (f'<p id="admin-totals">{project["labels"]} / {project["target"]} labels ({pct:.0f} %), '
               f'{project["complete_items"]} of {project["items"]} items complete, {project["skipped"]} skipped, '
               f'{project["flagged"]} flagged labels.</p>')
    return {ui.admin_summary: summary, ui.admin_labelers: labelers, ui.admin_agreement: measures,
            ui.admin_flagged: flagged}


# --- serving ---------------------------------------------------------------------------------


def serve(demo: gr.Blocks, store: LabelStore, host: str = "127.0.0.1", port: int | None = None, block: bool = True,
          concurrency: int = 8) -> gr.Blocks:
    """Launch `demo` behind the store's login. `block=False` returns at once (call `demo.close()`)."""
    # Gradio recomputes a pandas summary of its last 10,000 events after every event unless told
    # otherwise; with a team of labelers that summary would cost more than the submit itself.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")

    async def authenticate(name: str, password: str) -> bool:
        # Gradio runs a plain auth function on its event loop; scrypt takes ~0.1 s, during which
        # every other labeler's page would wait. In a thread, only the one logging in waits.
        return await asyncio.to_thread(store.authenticate, name, password)

    def is_admin(name: str) -> bool:
        user = store.get_user(name)
        return user is not None and user.role == "admin"

    from starlette.middleware import Middleware

    demo.queue(default_concurrency_limit=concurrency)
    demo.launch(
        app_kwargs={"middleware": [Middleware(SessionOwners, is_admin=is_admin)]},
        server_name=host, server_port=port, auth=authenticate, prevent_thread_lock=not block,
        auth_message="Sign in with the name and password your project admin gave you.",
        ssr_mode=False, footer_links=[], run_history=False, show_error=False, quiet=True,
        js=f"() => ({APP_JS}).installKeys()", css=APP_CSS + layout_css(),
    )
    return demo


def launch(store: LabelStore, config, block: bool = True) -> gr.Blocks:
    """Start the app for `config` (a `LabelConfig`: host, port, guidelines ...) over `store`.
    The guidelines' version shown is the one `labeling_app.cli.open_store` gives the store."""
    guidelines_md, version = load_guidelines(getattr(config, "guidelines", None))
    demo = build_app(store, guidelines_md, version)
    print(f"labeling app on http://{config.host}:{config.port} (guidelines version {version}); Ctrl+C stops it",
          flush=True)
    return serve(demo, store, host=config.host, port=config.port, block=block)
