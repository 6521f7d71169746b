"""One data schema for every stage: demonstrations, prompts, candidates, rankings and pairs.

Every reader validates on read and raises `DataError` naming the file, the row (1-based line of a
JSONL file, or row index of a Parquet / `datasets` source) and the field, before any work starts.

| record | fields |
|---|---|
| demonstration | `messages` (chat rows) or `prompt` + `completion` (strings or message lists) |
| prompt | `prompt` (string) or `messages` (the conversation so far); optional `id` |
| candidates | `id`, `prompt`, `completions` (K strings), optional `messages` (the conversation), `flags` |
| ranking | `prompt` (a conversation), `completions`, `ranking` (tiers best first, indexes into completions), `labeler`, `flags`, `seconds` |
| pair | `prompt`, `chosen`, `rejected`, optional `margin`: TRL's four layouts, HH-RLHF, UltraFeedback (rlhf/data/preferences.py) |

A prompt is a conversation everywhere (rlhf/data/conversation.py): a list of messages whose last is
the user's, or a plain string for the one-user-message case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from rlhf.data.conversation import Conversation, as_messages, last_user_text, normalize_prompt, prompt_key

FILES = Path(__file__).parent / "files"
ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """Bad input data; the message names the file, the row and the field."""

    def __init__(self, source: str, row: int | None, field_name: str | None, problem: str):
        self.source, self.row, self.field, self.problem = str(source), row, field_name, problem
        where = f"{source}"
        if row is not None:
            where += f", row {row}"
        if field_name:
            where += f", field '{field_name}'"
        super().__init__(f"{where}: {problem}")


def builtin(name: str) -> Path:
    """Path of a data file shipped with the package: `demonstrations`, `prompts_train`,
    `prompts_heldout` (JSONL) or `guidelines` (Markdown)."""
    for suffix in (".jsonl", ".md"):
        path = FILES / f"{name}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"no built-in data file named {name!r} in {FILES}")


# --- reading rows ----------------------------------------------------------------------------


def iter_rows(source: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(row_number, row)` from JSONL, JSON, Parquet, a `datasets` folder or a hub id.

    JSONL rows are numbered by their line in the file (blank lines skipped), others from 1."""
    path = Path(source)
    if path.is_file() and path.suffix in (".jsonl", ".json") and _is_jsonl(path):
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(path, lineno, None, f"not valid JSON ({err.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(path, lineno, None, "each line must be a JSON object")
                yield lineno, row
        return
    dataset = _load_dataset(path if path.exists() else str(source))
    for i, row in enumerate(dataset, start=1):
        yield i, dict(row)


def _is_jsonl(path: Path) -> bool:
    if path.suffix == ".jsonl":
        return True
    head = path.read_text(encoding="utf-8")[:1].strip()
    return head != "["


def _load_dataset(source):
    import datasets

    if isinstance(source, Path):
        if source.is_dir():
            loaded = datasets.load_from_disk(str(source))
            return loaded["train"] if isinstance(loaded, datasets.DatasetDict) else loaded
        kind = {".parquet": "parquet", ".json": "json", ".csv": "csv"}.get(source.suffix)
        if kind is None:
            raise DataError(source, None, None, "unknown file type (use .jsonl, .json, .parquet or a datasets folder)")
        return datasets.load_dataset(kind, data_files=str(source), split="train")
    try:
        return datasets.load_dataset(source, split="train")
    except Exception as err:  # noqa: BLE001 - any failure to fetch is the same message to a user
        raise DataError(source, None, None, f"not a local file and could not be fetched from the hub ({type(err).__name__})") from None


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows as JSONL atomically (temp file + rename), so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


# --- field checks ----------------------------------------------------------------------------


def _text(source, row_no, row, name, allow_empty=False) -> str:
    if name not in row or row[name] is None:
        raise DataError(source, row_no, name, "missing")
    value = row[name]
    if not isinstance(value, str):
        raise DataError(source, row_no, name, f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(source, row_no, name, "is empty")
    return value


def _messages(source, row_no, value, name) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError(source, row_no, name, "must be a non-empty list of {role, content} messages")
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise DataError(source, row_no, f"{name}[{i}]", "each message needs 'role' and 'content'")
        if msg["role"] not in ROLES:
            raise DataError(source, row_no, f"{name}[{i}].role", f"unknown role {msg['role']!r} (use {', '.join(ROLES)})")
        if not isinstance(msg["content"], str):
            raise DataError(source, row_no, f"{name}[{i}].content", "must be a string")
        out.append({"role": msg["role"], "content": msg["content"]})
    return out


# --- demonstrations (SFT) --------------------------------------------------------------------


def demonstration_to_prompt_completion(source, row_no, row) -> dict[str, list[dict[str, str]]]:
    """Normalise one demonstration into TRL's conversational prompt/completion form.

    `prompt` is the conversation before the final assistant turn and `completion` that turn, so
    SFTTrainer masks the prompt out of the loss: only the assistant's tokens are learned."""
    if "messages" in row and row["messages"] is not None:
        messages = _messages(source, row_no, row["messages"], "messages")
        if messages[-1]["role"] != "assistant":
            raise DataError(source, row_no, "messages", "the last message must be the assistant's answer")
        if not messages[-1]["content"].strip():
            raise DataError(source, row_no, f"messages[{len(messages) - 1}].content", "the assistant's answer is empty")
        if not any(m["role"] == "user" for m in messages[:-1]):
            raise DataError(source, row_no, "messages", "needs a user message before the assistant's answer")
        for prev, cur in zip(messages, messages[1:]):
            if prev["role"] == cur["role"]:
                raise DataError(source, row_no, "messages", f"two '{cur['role']}' messages in a row: roles must alternate")
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    if "prompt" in row or "completion" in row:
        prompt, completion = row.get("prompt"), row.get("completion")
        if isinstance(prompt, list):
            prompt_msgs = _messages(source, row_no, prompt, "prompt")
        else:
            prompt_msgs = [{"role": "user", "content": _text(source, row_no, row, "prompt")}]
        if isinstance(completion, list):
            completion_msgs = _messages(source, row_no, completion, "completion")
            if not "".join(m["content"] for m in completion_msgs).strip():
                raise DataError(source, row_no, "completion", "is empty")
        else:
            completion_msgs = [{"role": "assistant", "content": _text(source, row_no, row, "completion")}]
        return {"prompt": prompt_msgs, "completion": completion_msgs}
    raise DataError(source, row_no, "messages", "missing: a demonstration needs 'messages' or 'prompt' and 'completion'")


def load_demonstrations(source: str | Path, tokenizer=None, max_length: int | None = None, truncate: bool = True):
    """Read and validate demonstrations into a `datasets.Dataset` of conversational
    prompt/completion rows. With `truncate=False`, a row longer than `max_length` tokens is an error."""
    import datasets

    raw = list(iter_rows(source))
    rows = [demonstration_to_prompt_completion(source, n, row) for n, row in raw]
    if not rows:
        raise DataError(source, None, None, "holds no rows")
    if tokenizer is not None and max_length and not truncate:
        for (n, original), row in zip(raw, rows):
            ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=False)
            if len(ids) > max_length:
                name = "messages" if "messages" in original else "completion"
                raise DataError(source, n, name, f"is {len(ids)} tokens, longer than max_length={max_length} (truncation is off)")
    return datasets.Dataset.from_list(rows)


# --- prompts ---------------------------------------------------------------------------------


@dataclass
class Prompt:
    id: str
    messages: list[dict[str, str]]

    @property
    def text(self) -> str:
        """The last user message: what a labeler reads as "the prompt"."""
        return last_user_text(self.messages)

    @property
    def conversation(self) -> Conversation:
        """The stored form of the whole context: a string for one user message, else the messages."""
        return normalize_prompt(self.messages)


def load_prompts(source: str | Path, limit: int | None = None) -> list[Prompt]:
    """Prompts as `Prompt(id, messages)`; a row has `prompt` (string) or `messages`."""
    out = []
    for n, row in iter_rows(source):
        if "messages" in row and row["messages"] is not None:
            messages = _messages(source, n, row["messages"], "messages")
            if messages[-1]["role"] == "assistant":
                messages = messages[:-1]
        elif isinstance(row.get("prompt"), list):
            messages = _messages(source, n, row["prompt"], "prompt")
        else:
            messages = [{"role": "user", "content": _text(source, n, row, "prompt")}]
        out.append(Prompt(id=str(row.get("id", f"{Path(str(source)).stem}-{n}")), messages=messages))
        if limit and len(out) >= limit:
            break
    if not out:
        raise DataError(source, None, None, "holds no prompts")
    return out


# --- rankings and pairs ----------------------------------------------------------------------


@dataclass
class Ranking:
    """One labeler's ranking of K completions: `ranking` lists tiers best first (C > B = D > A is
    `[[2], [1, 3], [0]]`). `prompt` is the conversation (a string, or messages whose last is the
    user's: see rlhf/data/conversation.py); `margin` an optional preference strength of a pair;
    `meta` the row's other scalar columns (e.g. `source`), for per-column reports."""

    prompt: Conversation
    completions: list[str]
    ranking: list[list[int]]
    labeler: str = ""
    flags: list[str] = field(default_factory=list)
    seconds: float | None = None
    item_id: str | None = None
    guideline_version: str | None = None
    margin: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable key of the whole context (two conversations ending in one question differ)."""
        return prompt_key(self.prompt)

    @property
    def messages(self) -> list[dict[str, str]]:
        return as_messages(self.prompt)

    @property
    def text(self) -> str:
        """The last user message."""
        return last_user_text(self.prompt)

    def to_row(self) -> dict[str, Any]:
        """The ranking record as written to JSONL (`margin` only when set, `meta` columns inline)."""
        row = {k: v for k, v in self.__dict__.items() if k not in ("meta", "margin")}
        if self.margin is not None:
            row["margin"] = self.margin
        return {**self.meta, **row}

    def pairs(self) -> list[tuple[int, int, int]]:
        """Every strictly ordered pair as `(better, worse, tier_gap)`; ties give none."""
        return ranking_pairs(self.ranking)


def ranking_pairs(ranking: list[list[int]]) -> list[tuple[int, int, int]]:
    """`(better, worse, tier_gap)` for every two completions in different tiers."""
    out = []
    for hi, upper in enumerate(ranking):
        for lo in range(hi + 1, len(ranking)):
            for better in upper:
                for worse in ranking[lo]:
                    out.append((better, worse, lo - hi))
    return out


def check_ranking(ranking: Any, k: int) -> list[list[int]] | str:
    """The ranking as a list of tiers, or a string saying why it is not a partition of range(k)."""
    if not isinstance(ranking, list) or not ranking:
        return "must be a non-empty list of tiers (lists of completion indexes), best first"
    seen: list[int] = []
    for tier in ranking:
        if not isinstance(tier, list) or not tier:
            return "every tier must be a non-empty list of completion indexes"
        for i in tier:
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < k:
                return f"index {i!r} is not a completion index (0..{k - 1})"
            seen.append(i)
    if len(seen) != len(set(seen)):
        return "a completion appears in two tiers"
    if len(seen) != k:
        missing = sorted(set(range(k)) - set(seen))
        return f"completions {missing} are not ranked: a ranking must place every completion"
    return ranking


def load_preferences(source: str | Path, skip_bad: bool = False,
                     margin_from_scores: bool = False) -> tuple[list[Ranking], list[DataError]]:
    """Rankings or pairs in any published layout (rlhf/data/preferences.py), detected per row, as
    `Ranking`s with the whole conversation. `margin_from_scores`: a pair's margin is
    `score_chosen - score_rejected` (UltraFeedback-binarized). With `skip_bad`, bad rows are counted
    and returned instead of raising."""
    out, bad = [], []
    for n, row in iter_rows(source):
        try:
            if "ranking" in row or "completions" in row:
                out.append(parse_ranking_row(source, n, row))
            elif "chosen" in row or "rejected" in row:
                out.append(parse_pair_row(source, n, row, margin_from_scores))
            else:
                raise DataError(source, n, "ranking", "missing: a row needs 'completions' + 'ranking' (or ratings) "
                                                      "or 'chosen' + 'rejected'")
        except DataError as err:
            if not skip_bad:
                raise
            bad.append(err)
    if not out:
        raise DataError(source, None, None, "holds no usable rankings or pairs")
    return out, bad


def load_candidates(source: str | Path) -> list[dict[str, Any]]:
    """Candidates (one row per prompt with K completions), as `rlhf sample` writes them.

    The conversation comes from `messages` when present (a trailing assistant message dropped),
    else from `prompt` (a string or messages). Each row: `prompt` (the last user message, what
    the labeler reads as the question) and `messages` (the whole conversation when it is more
    than one user message, else None)."""
    out = []
    for n, row in iter_rows(source):
        from rlhf.data.preferences import row_error, row_conversation

        conversation = row_conversation(row, row_error(source, n))
        prompt = last_user_text(conversation)
        completions = row.get("completions")
        if not isinstance(completions, list) or not 2 <= len(completions) <= 9:
            raise DataError(source, n, "completions", "must be a list of 2 to 9 strings")
        for i, c in enumerate(completions):
            if not isinstance(c, str):
                raise DataError(source, n, f"completions[{i}]", "must be a string")
        out.append({"id": str(row.get("id", n)), "prompt": prompt, "completions": completions,
                    "flags": list(row.get("flags") or []),
                    "messages": as_messages(conversation) if not isinstance(conversation, str) else None})
    if not out:
        raise DataError(source, None, None, "holds no candidates")
    return out


from rlhf.data.preferences import parse_pair_row, parse_ranking_row  # noqa: E402  (they build Ranking)
