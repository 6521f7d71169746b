"""The data files shipped in rlhf/data/files/: counts, schema, no duplicates, held-out split kept apart."""

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from rlhf.data import builtin, load_demonstrations, load_prompts

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
VERSION_LINE = re.compile(r"^<!--\s*version:\s*([\w.]+)\s*-->")


def norm(text: str) -> str:
    """Two prompts that differ only in case, spacing or punctuation count as duplicates."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def raw_rows(name: str) -> list[dict]:
    with builtin(name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def demo_instructions() -> list[str]:
    return [row["messages"][0]["content"] for row in raw_rows("demonstrations")]


def test_counts_through_loaders():
    demos = load_demonstrations(builtin("demonstrations"))
    train = load_prompts(builtin("prompts_train"))
    heldout = load_prompts(builtin("prompts_heldout"))
    assert len(demos) >= 300
    assert len(heldout) >= 100
    assert len(train) + len(heldout) >= 500
    assert set(demos.column_names) >= {"prompt", "completion"}


def test_demonstrations_end_with_a_nonempty_assistant_answer():
    for row in raw_rows("demonstrations"):
        messages = row["messages"]
        assert messages[-1]["role"] == "assistant", row["id"]
        assert messages[0]["role"] == "user", row["id"]
        assert all(m["content"].strip() for m in messages), row["id"]
        assert messages[-1]["content"] == messages[-1]["content"].strip(), row["id"]


def test_prompts_are_nonempty_and_short():
    for name in ("prompts_train", "prompts_heldout"):
        for prompt in load_prompts(builtin(name)):
            assert prompt.text.strip(), (name, prompt.id)
            assert len(prompt.text.split()) <= 30, (name, prompt.id)


@pytest.mark.parametrize("name,prefix", [("demonstrations", "demo-"), ("prompts_train", "p-train-"),
                                         ("prompts_heldout", "p-heldout-")])
def test_ids_unique_and_prefixed(name, prefix):
    ids = [row["id"] for row in raw_rows(name)]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(prefix) for i in ids)


def test_no_duplicate_prompts_within_or_across_files():
    texts = {
        "demonstrations": demo_instructions(),
        "prompts_train": [p.text for p in load_prompts(builtin("prompts_train"))],
        "prompts_heldout": [p.text for p in load_prompts(builtin("prompts_heldout"))],
    }
    seen: dict[str, str] = {}
    for name, items in texts.items():
        for text in items:
            key = norm(text)
            assert key not in seen, f"{text!r} in {name} repeats one in {seen.get(key)}"
            seen[key] = name
    answers = [row["messages"][-1]["content"] for row in raw_rows("demonstrations")]
    assert len({norm(a) for a in answers}) == len(answers), "two demonstrations share an answer"


def test_heldout_disjoint_from_train():
    train = {norm(p.text) for p in load_prompts(builtin("prompts_train"))}
    heldout = {norm(p.text) for p in load_prompts(builtin("prompts_heldout"))}
    assert heldout and not heldout & train


def test_demonstrations_fit_max_length_256():
    from rlhf.models import tiny_tokenizer

    # truncate=False makes any row over 256 chat-template tokens an error naming the row
    demos = load_demonstrations(builtin("demonstrations"), tokenizer=tiny_tokenizer(), max_length=256, truncate=False)
    assert len(demos) >= 300


def test_guidelines_version_and_topics():
    text = builtin("guidelines").read_text(encoding="utf-8")
    match = VERSION_LINE.match(text.splitlines()[0])
    assert match and match.group(1) == "1.0"
    assert re.search(r"^Version: 1\.0$", text, re.MULTILINE)
    lowered = text.lower()
    for word in ("tie", "skip", "flag", "unsafe", "correct", "concise", "harmless"):
        assert word in lowered, word


def test_generator_reproduces_shipped_files(tmp_path):
    """The shipped files are exactly what scripts/make_shipped_data.py writes, so the two never drift."""
    script = ROOT / "scripts" / "make_shipped_data.py"
    if not script.exists():  # installed package without the repository's scripts/
        pytest.skip("scripts/make_shipped_data.py is not in this checkout")
    spec = importlib.util.spec_from_file_location("make_shipped_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.OUT = tmp_path
    module.main()
    for name in ("demonstrations", "prompts_train", "prompts_heldout"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == builtin(name).read_bytes(), name
