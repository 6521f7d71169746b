"""The labeling app in headless Chromium: what a labeler and an admin do, end to end.

Each test serves a fresh store on a free port in this process and drives real browser pages.
Chromium comes from the system (`apt-get install -y chromium`, or RLHF_CHROMIUM=/path); without it
these tests FAIL with that message rather than skip. Screenshots go to a temporary folder, or to
$RLHF_SCREENSHOT_DIR (docs/screenshots is made that way).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from labeling_app.app import build_app, serve
from rlhf.store import LabelStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("RLHF_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
GUIDELINES = "# Guidelines\n\nRank by helpfulness first, then honesty, then style.\n"
TIMEOUT = 30_000  # ms; a shared CI machine can be slow to render

FOUR = [{"id": f"q{i}", "prompt": f"Question {i}: how do I boil an egg?",
         "completions": [f"Answer {i}.{j}: boil it for {j + 5} minutes." for j in range(4)]} for i in range(1, 4)]
PAIRS = [{"id": f"p{i}", "prompt": f"Pair prompt {i}: name a colour.", "completions": [f"Red {i}", f"Blue {i}"]}
         for i in range(1, 3)]
NINE = [{"id": "n1", "prompt": "Nine ways to say hello?", "completions": [f"hello #{j}" for j in range(9)]}]
XSS = [{"id": "x1", "prompt": '<img src=x onerror="window.__xss=\'prompt\'"> **bold?**',
        "completions": ["<script>window.__xss = 'script'; alert('script')</script>",
                        "<img src=x onerror=\"window.__xss='img'; alert('img')\">",
                        "[click me](javascript:window.__xss='md';alert('md'))",
                        ("<a href=\"javascript:window.__xss='a'\">link</a>"
                         " <iframe src=\"javascript:alert(1)\"></iframe>")]}]
# Earlier turns are data too: payloads in a system message and an earlier turn must render as text.
XSS[0]["messages"] = [{"role": "system", "content": "<script>window.__xss = 'system'</script> be nice"},
                      {"role": "user", "content": "<img src=x onerror=\"window.__xss='turn'\">"},
                      {"role": "assistant", "content": "[ok](javascript:window.__xss='turn-md')"},
                      {"role": "user", "content": XSS[0]["prompt"]}]
PIRATE = [{"id": "z1", "prompt": "What is my name?",
           "messages": [{"role": "system", "content": "You are a pirate captain."},
                        {"role": "user", "content": "My name is Zorblax."},
                        {"role": "assistant", "content": "Ahoy, Zorblax!"},
                        {"role": "user", "content": "What is my name?"}],
           "completions": ["Yer name be Zorblax, matey.", "I know not yer name, landlubber."]},
          {"id": "z2", "prompt": "Name a colour.", "completions": ["Red.", "Blue."]}]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install -y chromium) or set "
                    "RLHF_CHROMIUM to its path. Browser tests never skip silently.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


class Served:
    def __init__(self, store: LabelStore, demo, url: str):
        self.store, self.demo, self.url = store, demo, url


@pytest.fixture
def make_app(tmp_path):
    """`make_app(items, labels_per_item=2)` -> Served: a store with users alice, bob (labelers)
    and admin (password `pw-<name>`), served on a free port until the test ends."""
    served: list[Served] = []

    def make(items, labels_per_item: int = 2, db: Path | None = None) -> Served:
        store = LabelStore(db or tmp_path / "labels.db", labels_per_item=labels_per_item,
                           guideline_version="test-v1", seed=0)
        for name, role in (("alice", "labeler"), ("bob", "labeler"), ("admin", "admin")):
            store.add_user(name, f"pw-{name}", role)
        store.add_items(items)
        demo = build_app(store, GUIDELINES, "test-v1")
        port = _free_port()
        serve(demo, store, host="127.0.0.1", port=port, block=False)
        served.append(Served(store, demo, f"http://127.0.0.1:{port}/"))
        return served[-1]

    yield make
    for s in served:
        s.demo.close()
        s.store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("RLHF_SCREENSHOT_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- page helpers ----------------------------------------------------------------------------


def open_page(browser, url: str, name: str | None, context=None):
    """A new page (in a new browser context unless given), logged in as `name` when not None."""
    context = context or browser.new_context(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    if name is not None:
        login(page, name)
    return page


def login(page, name: str, password: str | None = None) -> None:
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password or f"pw-{name}")
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#whoami", timeout=TIMEOUT)
    wait_item(page)


def field(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text]").first.input_value()


ITEM_ID_JS = """() => { const el = document.querySelector('#item textarea, #item input');
                        try { return JSON.parse(el.value).item_id || ''; } catch (e) { return null; } }"""


def wait_item(page, item_id: str | None = None, timeout: int = TIMEOUT) -> str:
    """Wait until the page shows an item (or `item_id`; "" = nothing left) and its form is filled
    in (app.js set the page's K); return the item's id."""
    page.wait_for_function(
        f"""([want]) => {{ const id = ({ITEM_ID_JS})();
            if (id === null || (want === null ? id === '' : id !== want)) return false;
            const item = JSON.parse(document.querySelector('#item textarea, #item input').value);
            const prompt = document.querySelector('#prompt textarea, #prompt input').value;
            return document.body.dataset.rlhfK === String(item.k) && prompt === (item.prompt || ''); }}""",
        arg=[item_id], timeout=timeout)
    return page.evaluate(ITEM_ID_JS)


def page_item(page) -> str:
    return page.evaluate(ITEM_ID_JS)


def shown_texts(page) -> list[str]:
    """The response texts in display order (A, B, ...), of the slots that are visible."""
    return page.evaluate("""() => [...'ABCDEFGHI'].map((c) => document.getElementById('slot-' + c))
        .filter((el) => el && el.offsetParent !== null)
        .map((el) => el.querySelector('textarea').value)""")


def checked_ranks(page, k: int) -> list[str | None]:
    return page.evaluate("""(k) => [...'ABCDEFGHI'].slice(0, k).map((c) => {
        const x = document.querySelector('#rank-' + c + ' input:checked'); return x ? x.value : null; })""", k)


def press_ranks(page, ranks: str) -> None:
    page.locator("#rlhf-header").click()  # focus the page, not a text box
    for key in ranks:
        page.keyboard.press(key)


def wait_status(page, startswith: str) -> str:
    page.wait_for_function("""([want]) => { const el = document.querySelector('#status textarea, #status input');
                               return el && el.value.startsWith(want); }""", arg=[startswith], timeout=TIMEOUT)
    return field(page, "status")


def expected_tiers(item: dict, shown: list[str], display_tiers: list[list[int]]) -> list[list[int]]:
    """Tiers over the item's ORIGINAL completion indexes, from tiers over display positions."""
    return [sorted(item["completions"].index(shown[p]) for p in tier) for tier in display_tiers]


def label_of(store: LabelStore, labeler: str, item_id: str) -> dict:
    rows = [r for r in store.rankings(include_flagged=True) if r["labeler"] == labeler and r["item_id"] == item_id]
    assert len(rows) == 1, rows
    return rows[0]


# --- the tests -------------------------------------------------------------------------------


def test_rank_with_tie_preview_submit_and_resume(browser, make_app, shots, tmp_path):
    app = make_app(FOUR)
    page = open_page(browser, app.url, "alice")
    assert wait_item(page) == "q1"
    assert field(page, "prompt") == FOUR[0]["prompt"]
    shown = shown_texts(page)
    assert sorted(shown) == sorted(FOUR[0]["completions"])
    assert "0</b> labeled" in page.inner_html("#rlhf-progress")

    press_ranks(page, "4212")  # A=4, B=2, C=1, D=2
    page.wait_for_function("() => document.querySelector('#rlhf-preview textarea').value === 'C > B = D > A'",
                           timeout=TIMEOUT)
    assert checked_ranks(page, 4) == ["4", "2", "1", "2"]
    assert page.locator("#rank-A label:visible").count() == 4  # choices 1..K only
    page.screenshot(path=str(shots / "ranking.png"), full_page=True)
    assert (shots / "ranking.png").stat().st_size > 20_000

    # A reload before submitting brings the same open item back (the form itself is not durable).
    page.reload()
    assert wait_item(page) == "q1" and shown_texts(page) == shown

    for letter, rank in zip("ABCD", "4212"):  # this time with the mouse
        page.locator(f"#rank-{letter} label").filter(has_text=rank).first.click()
    page.get_by_label("Comment (optional)").fill("B and D say the same")
    page.keyboard.press("Control+Enter")
    assert wait_status(page, "Saved item q1")
    assert wait_item(page, "q2") == "q2"
    assert "1</b> labeled" in page.inner_html("#rlhf-progress")

    saved = label_of(app.store, "alice", "q1")
    assert saved["ranking"] == expected_tiers(FOUR[0], shown, [[2], [1, 3], [0]])
    assert saved["comment"] == "B and D say the same" and saved["guideline_version"] == "test-v1"
    assert saved["seconds"] > 0

    # Resume: reload, a second browser, and a restarted server all show the open item q2.
    page.reload()
    assert wait_item(page) == "q2" and "1</b> labeled" in page.inner_html("#rlhf-progress")
    other = open_page(browser, app.url, "alice")
    assert wait_item(other) == "q2"
    app.demo.close()
    restarted = make_app(FOUR, db=tmp_path / "labels.db")
    again = open_page(browser, restarted.url, "alice")
    assert wait_item(again) == "q2" and "1</b> labeled" in again.inner_html("#rlhf-progress")
    assert page.dialogs == [] and other.dialogs == []


def test_skip_with_reason_and_undo(browser, make_app):
    app = make_app(FOUR)
    page = open_page(browser, app.url, "alice")
    assert wait_item(page) == "q1"
    page.locator("#rlhf-header").click()
    page.keyboard.press("s")  # puts the cursor in the reason box
    page.keyboard.type("needs a chef to judge")
    page.keyboard.press("Enter")
    assert wait_status(page, "Skipped item q1")
    assert wait_item(page, "q2") == "q2"
    assert "1 skipped" in page.inner_html("#rlhf-progress")

    shown = shown_texts(page)
    press_ranks(page, "1234")
    page.keyboard.press("Enter")
    wait_status(page, "Saved item q2")
    assert wait_item(page, "q3") == "q3"

    page.keyboard.press("u")  # undo: q2 comes back with its ranks filled in
    assert wait_item(page, "q2") == "q2"
    page.wait_for_selector("#editing", timeout=TIMEOUT)
    assert checked_ranks(page, 4) == ["1", "2", "3", "4"]
    press_ranks(page, "1123")
    page.wait_for_function("() => document.querySelector('#rlhf-preview textarea').value === 'A = B > C > D'",
                           timeout=TIMEOUT)
    page.locator("#submit-btn").click()
    wait_status(page, "Saved item q2")
    assert wait_item(page, "q3") == "q3"

    assert label_of(app.store, "alice", "q2")["ranking"] == expected_tiers(FOUR[1], shown, [[0, 1], [2], [3]])
    assert len(app.store.history("q2", "alice")) == 1  # the first version is kept
    assert app.store.label_count() == 1
    skips = [r for r in app.store.flagged() if r["kind"] == "skip"]
    assert [(r["item_id"], r["labeler"], r["reason"]) for r in skips] == [("q1", "alice", "needs a chef to judge")]


def test_pairwise_buttons_both_bad_then_nine_responses(browser, make_app):
    app = make_app(PAIRS + NINE)
    page = open_page(browser, app.url, "alice")
    assert wait_item(page) == "p1"
    assert page.locator("#pair-row").is_visible() and not page.locator("#submit-btn").is_visible()
    assert not page.locator("#rank-A").is_visible()
    shown = shown_texts(page)
    page.locator("#pair-a").click()  # "A is better"
    assert wait_item(page, "p2") == "p2"
    shown2 = shown_texts(page)
    page.locator("#rlhf-header").click()
    page.keyboard.press("4")  # both bad
    assert wait_item(page, "n1") == "n1"  # the page switches from two responses to nine

    assert len(shown_texts(page)) == 9 and page.locator("#submit-btn").is_visible()
    assert not page.locator("#pair-row").is_visible()
    assert page.locator("#rank-I label:visible").count() == 9
    press_ranks(page, "123456789")
    page.wait_for_function("() => document.querySelector('#rlhf-preview textarea').value === "
                           "'A > B > C > D > E > F > G > H > I'", timeout=TIMEOUT)
    page.keyboard.press("Enter")
    wait_item(page, "")
    page.wait_for_selector("#all-done", timeout=TIMEOUT)
    assert not page.locator("#slot-A").first.is_visible() and not page.locator("#submit-btn").is_visible()

    assert label_of(app.store, "alice", "p1")["ranking"] == expected_tiers(PAIRS[0], shown, [[0], [1]])
    bad = label_of(app.store, "alice", "p2")
    assert bad["ranking"] == [[0, 1]] and bad["flags"] == ["low_quality"] and sorted(shown2) == sorted(
        PAIRS[1]["completions"])
    assert len(label_of(app.store, "alice", "n1")["ranking"]) == 9


def test_two_labelers_do_not_see_each_other(browser, make_app):
    app = make_app(FOUR)
    alice = open_page(browser, app.url, "alice")
    assert wait_item(alice) == "q1"
    press_ranks(alice, "1234")
    alice.get_by_label("Comment (optional)").fill("alice-private-note")
    alice.locator("#flags label").filter(has_text="unsafe").click()
    alice.locator("#submit-btn").click()
    wait_status(alice, "Saved item q1")
    alice_label = label_of(app.store, "alice", "q1")

    bob = open_page(browser, app.url, "bob")  # another browser context: no shared cookies
    assert wait_item(bob) == "q1"  # N = 2: bob labels q1 too, from a clean form
    assert checked_ranks(bob, 4) == [None] * 4 and field(bob, "comment") == ""
    assert "alice-private-note" not in bob.content()
    assert "0</b> labeled" in bob.inner_html("#rlhf-progress")
    bob.locator("#rlhf-header").click()
    bob.keyboard.press("u")  # nothing of his to undo, and never alice's label
    wait_status(bob, "Nothing to undo")
    assert page_item(bob) == "q1"
    press_ranks(bob, "4321")
    bob.locator("#submit-btn").click()
    wait_status(bob, "Saved item q1")

    assert label_of(app.store, "alice", "q1") == alice_label
    assert label_of(app.store, "bob", "q1")["comment"] == ""
    alice.keyboard.press("u")  # alice's undo re-opens her own label, with her note
    page_comment = alice.wait_for_function(
        "() => document.querySelector('#comment textarea, #comment input').value === 'alice-private-note'",
        timeout=TIMEOUT)
    assert page_comment and page_item(alice) == "q1"


def test_model_text_renders_literally_and_runs_nothing(browser, make_app):
    app = make_app(XSS)
    page = open_page(browser, app.url, "alice")
    assert wait_item(page) == "x1"
    page.wait_for_timeout(500)  # give any injected handler the chance to fire
    assert field(page, "prompt") == XSS[0]["prompt"]
    assert sorted(shown_texts(page)) == sorted(XSS[0]["completions"])
    context = field(page, "context")
    assert all(m["content"] in context for m in XSS[0]["messages"][:-1])
    assert page.evaluate("() => window.__xss") is None and page.dialogs == []
    assert page.locator("img[src=x]").count() == 0 and page.locator("iframe").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0

    # A labeler's comment with a payload is shown as text in the admin's flagged queue.
    press_ranks(page, "1234")
    page.locator("#flags label").filter(has_text="unsafe").click()
    page.get_by_label("Comment (optional)").fill("<img src=x onerror=\"window.__xss='comment'\">")
    page.locator("#submit-btn").click()
    wait_status(page, "Saved item x1")
    admin = open_page(browser, app.url, "admin")
    admin.get_by_role("tab", name="Admin").click()
    admin.wait_for_function("() => document.querySelector('#admin-flagged').innerText.includes('window.__xss')",
                            timeout=TIMEOUT)
    admin.wait_for_timeout(500)
    assert admin.evaluate("() => window.__xss") is None and admin.dialogs == []
    assert admin.locator("img[src=x]").count() == 0


def test_earlier_turns_show_above_the_candidates(browser, make_app, shots):
    """A multi-turn item shows its system message and earlier turns, as text, above the prompt and
    the responses; an item without earlier turns shows no context box."""
    app = make_app(PIRATE, labels_per_item=1)
    page = open_page(browser, app.url, "alice")
    assert wait_item(page) == "z1"
    context = page.locator("#context")
    assert context.is_visible()
    assert field(page, "context") == ("System: You are a pirate captain.\n\nUser: My name is Zorblax.\n\n"
                                      "Assistant: Ahoy, Zorblax!")
    assert field(page, "prompt") == "What is my name?"
    assert context.bounding_box()["y"] < page.locator("#prompt").bounding_box()["y"] \
        < page.locator("#slot-A").bounding_box()["y"]
    # Set apart from what is ranked: its own background, unlike the prompt's.
    style = "el => getComputedStyle(el.querySelector('textarea')).backgroundColor"
    assert context.evaluate(style) != page.locator("#prompt").evaluate(style)
    page.screenshot(path=str(shots / "conversation.png"), full_page=True)
    page.locator("#pair-a").click()
    assert wait_item(page, "z2") == "z2"
    page.wait_for_function("() => document.body.dataset.rlhfContext === '0'", timeout=TIMEOUT)
    assert not page.locator("#context").is_visible()


def test_anonymous_visitor_gets_nothing(browser, make_app):
    app = make_app(FOUR)
    page = open_page(browser, app.url, None)
    page.get_by_role("button", name="Login").wait_for(timeout=TIMEOUT)
    html = page.content()
    assert "Question 1" not in html and "Answer 1" not in html
    for path in ("config", "gradio_api/info", "gradio_api/openapi.json"):
        response = page.request.get(app.url + path)
        assert response.status == 401, path
        assert "Question" not in response.text()
    joined = page.request.post(app.url + "gradio_api/queue/join",
                               data=json.dumps({"data": [], "fn_index": 0, "session_hash": "anon1234"}),
                               headers={"Content-Type": "application/json"})
    assert joined.status == 401

    page.get_by_label("username").fill("alice")
    page.get_by_label("password").fill("wrong password")
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Incorrect credentials").wait_for(timeout=TIMEOUT)
    assert page.locator("#whoami").count() == 0 and "Question 1" not in page.content()


def test_admin_tab_progress_agreement_and_export(browser, make_app, shots):
    app = make_app(FOUR)
    for name, keys in (("alice", "1234"), ("bob", "1224")):
        page = open_page(browser, app.url, name)
        assert page.get_by_role("tab", name="Admin").count() == 0  # not rendered for labelers
        wait_item(page, "q1")
        press_ranks(page, keys)
        page.locator("#submit-btn").click()
        wait_status(page, "Saved item q1")
    page.locator("#rlhf-header").click()
    page.keyboard.press("s")
    page.keyboard.type("<b>not sure</b>")
    page.keyboard.press("Enter")
    wait_status(page, "Skipped item q2")

    admin = open_page(browser, app.url, "admin")
    admin.get_by_role("tab", name="Admin").click()
    admin.wait_for_function("() => document.querySelector('#admin-labelers').innerText.includes('alice')",
                            timeout=TIMEOUT)
    assert "2 / 6 labels" in admin.inner_text("#admin-totals")
    assert "pairwise_agreement" in admin.inner_text("#admin-agreement")
    assert "<b>not sure</b>" in admin.inner_text("#admin-flagged")  # literal text

    admin.locator("#export-rankings").click()
    link = admin.locator("#export-file a").first
    link.wait_for(timeout=TIMEOUT)
    admin.screenshot(path=str(shots / "admin.png"), full_page=True)
    assert (shots / "admin.png").stat().st_size > 20_000
    with admin.expect_download(timeout=TIMEOUT) as download:
        link.click()
    rows = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert sorted(r["labeler"] for r in rows) == ["alice", "bob"]
    assert all(r["item_id"] == "q1" and r["guideline_version"] == "test-v1" for r in rows)
