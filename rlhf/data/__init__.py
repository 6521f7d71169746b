"""One data schema for every stage: demonstrations, prompts, candidates, rankings and pairs.

Every reader validates on read and raises `DataError` naming the file, the row (1-based line of a
JSONL file, or row index of a Parquet / `datasets` source) and the field, before any work starts.
Files are opened by one layer (`decode_lines`, `read_text`, `iter_rows`): a UTF-8 byte-order mark is
dropped, a byte that is not UTF-8 names its line, and a NaN or infinite number names its field.

| record | fields |
|---|---|
| demonstration | `messages` (chat rows; SFT learns every assistant turn) or `prompt` + `completion` (strings or message lists; SFT learns the completion) |
| prompt | `prompt` (string or messages) or `messages` (the conversation so far, ending in a user message); optional `id`, unique |
| candidates | `id`, `prompt`, `completions` (K strings), optional `messages` (the conversation), `flags` |
| ranking | `prompt` (a conversation), `completions`, `ranking` (tiers best first, indexes into completions), `labeler`, `flags`, `seconds` |
| pair | `prompt`, `chosen`, `rejected`, optional `margin`: TRL's four layouts, HH-RLHF, UltraFeedback; also SHP, HelpSteer2 and Nectar's own columns (rlhf/data/preferences.py) |

A prompt is a conversation everywhere (rlhf/data/conversation.py): a list of messages whose last is
the user's, or a plain string for the one-user-message case.
"""

from __future__ import annotations

import itertools
import json
import math
import re
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


# --- reading files ---------------------------------------------------------------------------
# One layer opens and decodes every text file the stages read (JSONL, JSON arrays, CSV, users files,
# guidelines): a UTF-8 byte-order mark is dropped, a byte that is not UTF-8 is an error naming its
# line, and a number that is not finite (NaN, Infinity, 1e999) is an error naming its field.

BOM = b"\xef\xbb\xbf"  # what Notepad, Excel's "CSV UTF-8" and others write at the start
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".gz")
ACCEPTED_FORMS = ("a .jsonl, .json, .parquet or .csv file (the text ones gzipped too: .jsonl.gz), a folder written by "
                  "`datasets`' save_to_disk, or a hub dataset id")
GZIP_MAGIC = b"\x1f\x8b"


def open_bytes(path: str | Path):
    """`path` opened for reading bytes, decompressed when it is gzipped (HH-RLHF is published as
    `train.jsonl.gz`): known by its first bytes, whatever its name."""
    path = Path(path)
    with path.open("rb") as fh:
        gzipped = fh.read(2) == GZIP_MAGIC
    if gzipped:
        import gzip

        return gzip.open(path, "rb")
    return path.open("rb")


def data_suffix(path: str | Path) -> str:
    """The file kind's suffix in lower case, under a `.gz`: `train.JSONL.gz` -> `.jsonl`."""
    path = Path(path)
    suffix = path.suffix.lower()
    return Path(path.stem).suffix.lower() if suffix == ".gz" else suffix


def _not_utf8(source, line: int, raw: bytes, start: int) -> DataError:
    return DataError(source, line, None, f"not valid UTF-8 (byte 0x{raw[start]:02x} at byte {start + 1} of the line): "
                                         "save the file as UTF-8")


def decode_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """`(line number, text)` for each line of a UTF-8 text file (1-based, line end kept), without a
    byte-order mark at the start. Raises `DataError` naming the line of a byte that is not UTF-8."""
    with open_bytes(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _not_utf8(path, lineno, raw, err.start) from None


def read_text(path: str | Path) -> str:
    """The whole of a UTF-8 text file, without a byte-order mark; `DataError` names the line of a
    byte that is not UTF-8."""
    with open_bytes(path) as fh:
        raw = fh.read()
    raw = raw[len(BOM):] if raw.startswith(BOM) else raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        raise _not_utf8(path, raw.count(b"\n", 0, err.start) + 1, raw[line_start:], err.start - line_start) from None


def check_utf8(path: str | Path, chunk: int = 1 << 20) -> None:
    """Raise `DataError` naming the line of the first byte of `path` that is not UTF-8 (streamed:
    for text files another library parses, such as CSV)."""
    import codecs

    decoder, line = codecs.getincrementaldecoder("utf-8")(), 1
    with open_bytes(path) as fh:
        while block := fh.read(chunk):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                # err.start counts from the decoder's carried-over bytes (at most 3) plus this block.
                carried = len(err.object) - len(block)
                at = max(err.start - carried, 0)
                line += block.count(b"\n", 0, at)
                line_start = block.rfind(b"\n", 0, at) + 1
                raise _not_utf8(path, line, block[line_start:], at - line_start) from None
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataError(path, line, None, "not valid UTF-8 (the file ends inside a character)") from None


def nonfinite_field(value: Any, name: str = "") -> tuple[str, float] | None:
    """`(field path, number)` of the first NaN or infinite number in a row (nested lists and
    objects too: `scores[2]`, `meta.margin`), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (name, value)
    if isinstance(value, dict):
        items = ((f"{name}.{k}" if name else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{name}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for path, item in items:
        found = nonfinite_field(item, path)
        if found:
            return found
    return None


def _number_name(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def check_finite_row(source, row_no: int, row: dict) -> dict:
    """`row`, or `DataError` naming the field that holds NaN or an infinity. Python's json reads
    `NaN`, `Infinity` and `1e999`; Parquet stores NaN. Any of them would train to a NaN loss."""
    found = nonfinite_field(row)
    if found:
        raise DataError(source, row_no, found[0], f"is {_number_name(found[1])}: numbers must be finite")
    return row


def json_line(source, lineno: int, text: str) -> dict:
    """One JSONL line as a dict; `DataError` naming `source` and `lineno` when it is not valid JSON
    or not a JSON object."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        # The two shapes of a JSON array or indented JSON saved as .jsonl: say which, not just where.
        stripped = text.strip()
        hint = (": a row must be one whole JSON object on one line" if stripped in ("{", "[", "},", "}", "]")
                else ": a JSONL line holds one object with no comma after it" if stripped.endswith("},") else "")
        raise DataError(source, lineno, None, f"not valid JSON ({err.msg}){hint}") from None
    if not isinstance(row, dict):
        raise DataError(source, lineno, None, "each line must be a JSON object")
    return row


# --- reading rows ----------------------------------------------------------------------------


def iter_rows(source: str | Path, check_finite: bool = True,
              bad: list[DataError] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(row_number, row)` from JSONL, a JSON array, Parquet, CSV, a `datasets` folder or a hub id.

    JSONL rows are numbered by their line in the file (blank lines skipped), others from 1. Every
    row is checked for non-finite numbers (`check_finite_row`) unless `check_finite=False` (for a
    caller that checks each row itself, to count bad rows instead of stopping). With a `bad` list,
    a row that is not a JSON object (a line cut short by a crash, a stray `[...]`) is appended to it
    as its DataError and skipped instead of ending the file: `--skip_bad_rows` counts it like any
    other bad row."""
    path = Path(source)
    finite = check_finite_row if check_finite else (lambda _source, _n, row: row)
    suffix = data_suffix(path)  # DATA.JSONL from a Windows tool is the same file; train.jsonl.gz is JSONL
    if path.is_file() and suffix in (".jsonl", ".json") and _is_jsonl(path):
        first = True
        for lineno, line in decode_lines(path):
            if not line.strip():
                continue
            try:
                row = json_line(path, lineno, line)
            except DataError as err:
                if first and line.strip().startswith("{") and not line.strip().endswith("}"):
                    _one_object_check(path)  # an object left open on line 1: maybe indented JSON
                first = False
                if bad is None:
                    raise
                bad.append(err)
                continue
            if first and _wraps_rows(row):
                raise _one_object_error(path, row)
            first = False
            yield lineno, finite(path, lineno, row)
        return
    if path.is_file() and suffix == ".json":  # one JSON array of objects
        try:
            rows = json.loads(read_text(path))
        except json.JSONDecodeError as err:
            raise DataError(path, err.lineno, None, f"not valid JSON ({err.msg})") from None
        if not isinstance(rows, list):
            raise DataError(path, None, None, "a .json file must hold one array of objects (or one object a line)")
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                if bad is None:
                    raise DataError(path, i, None, "each element of the array must be a JSON object")
                bad.append(DataError(path, i, None, "each element of the array must be a JSON object"))
                continue
            yield i, finite(path, i, row)
        return
    if not path.exists() and (path.suffix.lower() in FILE_SUFFIXES or path.is_absolute() or str(source).startswith((".", "~"))):
        # A hub id has neither (owner/name): this was meant as a local file, so say it is missing.
        raise DataError(source, None, None, "no such file")
    dataset = _load_dataset(path if path.exists() else str(source))
    csv = path.is_file() and suffix == ".csv"
    for i, row in enumerate(dataset, start=1):
        row = dict(row)
        if csv:
            try:
                row = csv_cells(source, i, row)
            except DataError as err:
                if bad is None:
                    raise
                bad.append(err)
                continue
        yield i, finite(source, i, row)


# A CSV cell holds text only, so a field that is a list elsewhere is written as JSON text in it.
CSV_MESSAGE_FIELDS = ("prompt", "chosen", "rejected", "messages", "completion")
CSV_LIST_FIELDS = ("completions", "ranking", "ratings", "flags")


def csv_cells(source, row_no: int, row: dict) -> dict:
    """A CSV row with its list-valued cells read as JSON: `completions`, `ranking`, `ratings`,
    `flags` always, and `prompt`, `chosen`, `rejected`, `messages`, `completion` when the cell is a
    JSON list of {role, content} messages (else it is text). A message list in Python's notation
    (`[{'role': 'user', ...}]`, as pandas writes a list into a CSV) is refused rather than read as
    the text of an answer: the file must hold JSON there (or be JSONL / Parquet)."""
    out = dict(row)
    for name in CSV_MESSAGE_FIELDS + CSV_LIST_FIELDS:
        cell = row.get(name)
        if not isinstance(cell, str) or not cell.lstrip().startswith("["):
            continue
        try:
            value = json.loads(cell)
        except json.JSONDecodeError:
            value = None
        if name in CSV_LIST_FIELDS:
            if not isinstance(value, list):
                raise DataError(source, row_no, name, "a CSV cell of a list field must hold a JSON list (e.g. [\"a\", \"b\"])")
            out[name] = value
        elif isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
            out[name] = value
        elif value is None and re.match(r"\s*\[\s*\{\s*'(role|content)'\s*:", cell):
            raise DataError(source, row_no, name, "holds a message list in Python's notation ([{'role': ...}], as pandas "
                                                  "writes a list into a CSV): write the cell as JSON, or the file as JSONL or Parquet")
    return out


def _one_object_check(path: Path) -> None:
    """A JSON or JSONL file whose first line is not JSON may be one object written over several
    lines (an indented `{"data": [...]}`, `json.dump(row, indent=2)`): say so, rather than that
    line 1 `{` is not valid JSON. Files above 256 MB are not parsed whole for this (memory)."""
    if path.stat().st_size > 256 << 20:
        return
    try:
        whole = json.loads(read_text(path))
    except json.JSONDecodeError:
        return
    if isinstance(whole, dict):
        raise _one_object_error(path, whole, "written over several lines ")


def _wraps_rows(row: dict) -> bool:
    """Whether a JSON object is not a row but a wrapper of rows (`{"data": [...]}`, `{"train": [...],
    "test": [...]}`): every value a list of objects, none of them a chat message."""
    return bool(row) and all(isinstance(v, list) and v and all(isinstance(x, dict) and "role" not in x for x in v)
                             for v in row.values())


def _one_object_error(path: Path, whole: dict, how: str = "") -> DataError:
    keys = ", ".join(list(whole)[:5]) + (", ..." if len(whole) > 5 else "")
    held = " holding lists of rows" if _wraps_rows(whole) else ""
    return DataError(path, None, None, f"holds one JSON object {how}(keys: {keys}){held}; the file must hold "
                                       "one row object a line (JSONL), or (.json) one array of row objects: save the "
                                       "list of rows itself")


def _is_jsonl(path: Path) -> bool:
    """`.jsonl`, or a `.json` file whose first character (after a BOM and blanks) is not `[`."""
    if data_suffix(path) == ".jsonl":
        return True
    with open_bytes(path) as fh:
        head = fh.read(4096)
    head = head[len(BOM):] if head.startswith(BOM) else head
    return not head.lstrip().startswith(b"[")


def _load_dataset(source):
    import datasets

    if isinstance(source, Path):
        if source.is_dir():
            return _load_from_disk(source)
        kind = {".parquet": "parquet", ".csv": "csv"}.get(data_suffix(source))
        if kind == "parquet" and source.suffix.lower() == ".gz":
            kind = None  # Parquet compresses inside the file
        if kind is None:
            raise DataError(source, None, None, f"unknown file type: use {ACCEPTED_FORMS}")
        if kind == "csv":
            check_utf8(source)
            lines = len(list(itertools.islice((n for n, line in decode_lines(source) if line.strip()), 2)))
            if lines <= 1:  # else the library's "Instruction 'train' corresponds to no data!"
                raise DataError(source, None, None, "holds no rows" + (" (only a header line)" if lines else " (it is empty)"))
        try:
            return datasets.load_dataset(kind, data_files=str(source), split="train")
        except Exception as err:  # noqa: BLE001 - a damaged file: the library's message, in one line
            raise DataError(source, None, None, f"could not be read as {kind} ({type(err).__name__}: {_first_line(err)})") from None
    try:
        return datasets.load_dataset(source, split="train")
    except Exception as err:  # noqa: BLE001 - any failure to fetch is the same message to a user
        raise DataError(source, None, None, f"not a local file and could not be fetched from the hub ({type(err).__name__}); "
                                            f"use {ACCEPTED_FORMS}") from None


def _load_from_disk(folder: Path):
    """A `datasets` folder (Dataset or DatasetDict with a "train" split), or DataError saying what
    the folder lacks."""
    import datasets

    if not ((folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()):
        raise DataError(folder, None, None, "is a folder but not a `datasets` folder (it has no state.json or "
                                            f"dataset_dict.json, which save_to_disk writes): use {ACCEPTED_FORMS}")
    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as err:  # noqa: BLE001 - a damaged folder: the library's message, in one line
        raise DataError(folder, None, None, f"could not be read as a `datasets` folder ({type(err).__name__}: {_first_line(err)})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataError(folder, None, None, f"holds the splits {sorted(loaded)}, but no 'train' split")
        return loaded["train"]
    return loaded


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


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


def demonstration_to_prompt_completion(source, row_no, row) -> dict[str, Any]:
    """Normalise one demonstration into TRL's conversational prompt/completion form.

    `prompt` is the conversation before the final assistant turn and `completion` that turn, so
    SFTTrainer masks the prompt out of the loss: only the assistant's tokens are learned. Both forms
    meet the same checks: the completion is the assistant's, the prompt holds a user message and
    ends in one, and roles alternate across the two (else the model learns to answer a turn no one
    took, or learns a user's words as its own).
    A row with a true/false `label` (TRL's unpaired KTO layout) is refused: its false rows are
    answers not to learn.
    `form` says which the row was: "messages" (a whole conversation, whose earlier assistant turns
    `rlhf sft` learns too unless --mask_history) or "prompt_completion" (the user chose the split:
    only the completion is learned)."""
    if isinstance(row.get("label"), bool):  # TRL's unpaired preference (KTO) layout: False marks a bad answer
        raise DataError(source, row_no, "label", "a true/false label marks this as an unpaired preference row (KTO "
                                                 "layout: prompt, completion, label), not a demonstration: SFT would "
                                                 "learn the answers labelled false too; keep the rows labelled true "
                                                 "and drop the column")
    if "messages" in row and row["messages"] is not None:
        messages = _messages(source, row_no, row["messages"], "messages")
        if messages[-1]["role"] != "assistant":
            raise DataError(source, row_no, "messages", "the last message must be the assistant's answer")
        if not messages[-1]["content"].strip():
            raise DataError(source, row_no, f"messages[{len(messages) - 1}].content", "the assistant's answer is empty")
        prompt_msgs, completion_msgs = messages[:-1], messages[-1:]
        prompt_name = completion_name = "messages"
    elif "prompt" in row or "completion" in row:
        prompt, completion = row.get("prompt"), row.get("completion")
        if isinstance(prompt, list):
            prompt_msgs = _messages(source, row_no, prompt, "prompt")
        else:
            prompt_msgs = [{"role": "user", "content": _text(source, row_no, row, "prompt")}]
        if isinstance(completion, list):
            completion_msgs = _messages(source, row_no, completion, "completion")
            for i, m in enumerate(completion_msgs):
                if m["role"] != "assistant":
                    raise DataError(source, row_no, f"completion[{i}].role",
                                    f"is {m['role']!r}: a completion is the assistant's answer")
            if not "".join(m["content"] for m in completion_msgs).strip():
                raise DataError(source, row_no, "completion", "is empty")
        else:
            completion_msgs = [{"role": "assistant", "content": _text(source, row_no, row, "completion")}]
        prompt_name, completion_name = "prompt", "completion"
    else:
        raise DataError(source, row_no, "messages", "missing: a demonstration needs 'messages' or 'prompt' and 'completion'")
    if not any(m["role"] == "user" for m in prompt_msgs):
        raise DataError(source, row_no, prompt_name, "needs a user message before the assistant's answer")
    if prompt_msgs[-1]["role"] != "user":
        raise DataError(source, row_no, prompt_name, f"the message before the assistant's answer is the "
                                                     f"{prompt_msgs[-1]['role']}'s: it must be the user's")
    conversation = prompt_msgs + completion_msgs
    for i, (prev, cur) in enumerate(zip(conversation, conversation[1:]), start=1):
        if prev["role"] == cur["role"]:
            name = prompt_name if i < len(prompt_msgs) else completion_name
            raise DataError(source, row_no, name, f"two '{cur['role']}' messages in a row: roles must alternate")
    form = "messages" if prompt_name == "messages" else "prompt_completion"
    return {"prompt": prompt_msgs, "completion": completion_msgs, "form": form}


def load_demonstrations(source: str | Path, tokenizer=None, max_length: int | None = None, truncate: bool = True):
    """Read and validate demonstrations into a `datasets.Dataset` of conversational
    prompt/completion rows, with the `form` each row was given in ("messages" or
    "prompt_completion", see `demonstration_to_prompt_completion`). With `truncate=False`, a row
    longer than `max_length` tokens is an error."""
    import datasets

    from rlhf.tokens import encode_chat

    raw = list(iter_rows(source))
    rows = [demonstration_to_prompt_completion(source, n, row) for n, row in raw]
    if not rows:
        raise DataError(source, None, None, "holds no rows")
    if tokenizer is not None and max_length and not truncate:
        for (n, original), row in zip(raw, rows):
            ids = encode_chat(tokenizer, row["prompt"] + row["completion"])
            if len(ids) > max_length:
                name = "messages" if "messages" in original else "completion"
                raise DataError(source, n, name, f"is {len(ids)} tokens, longer than max_length={max_length} (truncation is off)")
    return datasets.Dataset.from_list(rows)


# --- prompts ---------------------------------------------------------------------------------


# A prompts row's fields that make the prompt itself; every other field is one of its `columns`.
PROMPT_FIELDS = ("id", "prompt", "messages", "instruction")


@dataclass
class Prompt:
    """One prompt: its `id`, its conversation as `messages`, and `columns`, the row's other fields
    as the file gives them (e.g. a reference `answer` or `solution` for a verifiable reward: PPO
    hands each to the reward function, one value per completion, as TRL's GRPOTrainer does)."""

    id: str
    messages: list[dict[str, str]]
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The last user message: what a labeler reads as "the prompt"."""
        return last_user_text(self.messages)

    @property
    def conversation(self) -> Conversation:
        """The stored form of the whole context: a string for one user message, else the messages."""
        return normalize_prompt(self.messages)


def load_prompts(source: str | Path, limit: int | None = None) -> list[Prompt]:
    """Prompts as `Prompt(id, messages)`; a row has `prompt` (a string or messages) or `messages`
    (a trailing assistant message dropped). The conversation must end in a non-empty user message,
    as everywhere (`check_conversation`): a policy asked to continue a system message or an
    assistant turn would answer nothing anyone asked.

    An `id` must be unique in the file: `rlhf sample` turns each prompt into one labeling item of
    that id, and a PPO reward function may look its prompt up by it. The row's other fields are the
    prompt's `columns` (a reference answer, a test case...), which PPO passes to the reward."""
    out = prompts_from_rows(iter_rows(source), source, Path(str(source)).stem, limit)
    if not out:
        raise DataError(source, None, None, "holds no prompts")
    return out


def prompts_from_rows(rows: Iterable[tuple[int, dict]], source: str | Path, id_prefix: str,
                      limit: int | None = None) -> list[Prompt]:
    """`Prompt`s from (row number, row) pairs read as a prompts file's rows (see `load_prompts`); a
    row without an `id` gets `{id_prefix}-{row number}`. DataError naming `source`, the row and the
    field for a bad row or a repeated id."""
    from rlhf.data.preferences import row_conversation, row_error

    out, first_row = [], {}
    for n, row in rows:
        if not isinstance(row, dict):
            raise DataError(source, n, None, f"must be an object with 'prompt' or 'messages', got {type(row).__name__}")
        conversation = row_conversation(row, row_error(source, n))
        prompt_id = str(row["id"]) if row.get("id") is not None else f"{id_prefix}-{n}"
        if prompt_id in first_row:
            raise DataError(source, n, "id", f"{prompt_id!r} repeats the id of row {first_row[prompt_id]}: "
                                             "every prompt needs its own id")
        first_row[prompt_id] = n
        columns = {k: v for k, v in row.items() if k not in PROMPT_FIELDS}
        out.append(Prompt(id=prompt_id, messages=as_messages(conversation), columns=columns))
        if limit and len(out) >= limit:
            break
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
    `score_chosen - score_rejected` (UltraFeedback-binarized) or `|preference_strength|` (HelpSteer2);
    an SHP row is refused with it (its scores are upvote counts). With `skip_bad`, bad rows are
    counted and returned instead of raising."""
    out, bad = [], []
    for n, row in iter_rows(source, check_finite=False, bad=bad if skip_bad else None):
        try:
            check_finite_row(source, n, row)
            if "ranking" in row or "completions" in row:
                out.append(parse_ranking_row(source, n, row))
            elif "chosen" in row or "rejected" in row:
                out.append(parse_pair_row(source, n, row, margin_from_scores))
            elif reader := layout_reader(row):  # SHP, HelpSteer2's preference file, Nectar
                out.append(reader(source, n, row, margin_from_scores))
            else:
                raise unsupported_row(source, n, row)
        except DataError as err:
            if not skip_bad:  # published sets hold a few such rows (HH-RLHF repeats some answers): say the way on
                raise DataError(err.source, err.row, err.field,
                                f"{err.problem} (--skip_bad_rows true skips such rows and counts them)") from None
            bad.append(err)
    if not out:
        # Every row skipped: the count and the first problem, else the user sees no reason at all.
        rows = f"all {len(bad)} rows are bad" if len(bad) > 1 else "its one row is bad"
        why = f" ({rows}; first: {bad[0]})" if bad else ""
        raise DataError(source, None, None, f"holds no usable rankings or pairs{why}")
    return out, bad


def print_skipped_rows(prog: str, source: str | Path, bad: list[DataError], where: str) -> None:
    """The console line for rows `--skip_bad_rows` left out (none: nothing printed): the count, the
    file, where the count is recorded (`where`, e.g. "metrics.json bad_rows") and the first problem."""
    if bad:
        rows = "row" if len(bad) == 1 else "rows"
        print(f"[{prog}] skipped {len(bad)} bad {rows} of {source} (see {where}); first: {bad[0]}", flush=True)


def load_candidates(source: str | Path) -> list[dict[str, Any]]:
    """Candidates (one row per prompt with K completions), as `rlhf sample` writes them.

    The conversation comes from `messages` when present (a trailing assistant message dropped),
    else from `prompt` (a string or messages). Each row: `prompt` (the last user message, what
    the labeler reads as the question) and `messages` (the whole conversation when it is more
    than one user message, else None).

    An item id must be unique in the file: two rows with one id would be one item to the labeling
    store, and one of them would silently go unlabeled, so the second is an error naming both rows."""
    out, first_row = [], {}
    for n, row in iter_rows(source):
        from rlhf.data.preferences import row_conversation, row_error, row_flags

        conversation = row_conversation(row, row_error(source, n))
        prompt = last_user_text(conversation)
        completions = row.get("completions")
        if not isinstance(completions, list) or not 2 <= len(completions) <= 9:
            raise DataError(source, n, "completions", "must be a list of 2 to 9 strings")
        for i, c in enumerate(completions):
            if not isinstance(c, str):
                raise DataError(source, n, f"completions[{i}]", "must be a string")
        item_id = str(row.get("id", n))
        if item_id in first_row:
            raise DataError(source, n, "id", f"{item_id!r} repeats the id of row {first_row[item_id]}: "
                                             "every item needs its own id")
        first_row[item_id] = n
        out.append({"id": item_id, "prompt": prompt, "completions": completions,
                    "flags": row_flags(row, row_error(source, n)),
                    "messages": as_messages(conversation) if not isinstance(conversation, str) else None})
    if not out:
        raise DataError(source, None, None, "holds no candidates")
    return out


from rlhf.data.preferences import layout_reader, parse_pair_row, parse_ranking_row, unsupported_row  # noqa: E402  (they build Ranking)
