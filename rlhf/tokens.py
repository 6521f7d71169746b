"""Chat messages -> token ids, with the messages' text kept as text.

Text from a file, a labeler or a decoded completion may contain the characters of a special token
(`<|im_end|>`, `<|endoftext|>`: pasted chat logs, a model echoing them). Rendering the chat template
to a string and tokenizing it, as `apply_chat_template(tokenize=True)` does in transformers 5, turns
those characters into real control ids: SFT then trains end-of-turn in mid-answer, and a completion
can forge a new user turn that the reward model scores. Here only the chat template places control
tokens; message content is encoded with the tokenizer's `split_special_tokens=True` (Hugging Face
tokenizers), so `<|im_end|>` in content becomes the ordinary tokens `<`, `|`, `im`, ...

Every stage encodes chat text through `encode_chat` (SFT, reward training and scoring, PPO's prompts
and its reward re-encoding, DPO, sampling, eval). For text without special-token characters the ids
are those of `apply_chat_template(tokenize=True)`: the text between two special tokens is tokenized
in one piece, as the tokenizer itself does (checked on SmolLM2's tokenizer over the shipped
demonstrations; a special token declared with lstrip/rstrip could differ in the spaces beside it).

    ids = encode_chat(tokenizer, [{"role": "user", "content": "Hi"}], add_generation_prompt=True)
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

# Private-use characters mark where message content sits in the rendered template.
_MARKER_CANDIDATES = [chr(c) for c in range(0xE000, 0xE100)]

# Ids of the text segments `_encode_marked` has tokenized, by (tokenizer, text), while a
# `_same_segments` block is open: the prefixes of one conversation share all but their last
# segments. Plain module state, not a ContextVar: datasets hashes `map` functions with dill, which
# cannot pickle a ContextVar (the fingerprint then fails with a logged traceback).
_SEGMENTS: dict[tuple[int, str], list[int]] = {}
_OPEN_BLOCKS = [0]


@contextmanager
def _same_segments() -> Iterator[None]:
    """Within the block, a text segment between two special tokens is tokenized once: encoding
    every prefix of an n-turn conversation then tokenizes O(n) segments, not O(n^2). Same ids
    (the key holds the tokenizer's id, and the tokenizer outlives the block)."""
    _OPEN_BLOCKS[0] += 1
    try:
        yield
    finally:
        _OPEN_BLOCKS[0] -= 1
        if not _OPEN_BLOCKS[0]:
            _SEGMENTS.clear()


def special_token_texts(tokenizer) -> list[str]:
    """The text of every special token (`special=True` in the tokenizer's added tokens, plus the named
    ones), longest first so a regex prefers `<|im_end|>` over a shorter token it starts with."""
    texts = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    texts.update(getattr(tokenizer, "all_special_tokens", []) or [])
    return sorted((t for t in texts if t), key=len, reverse=True)


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of plain `text`, special-token characters included as ordinary text; no BOS/EOS added."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def _segment_ids(tokenizer, text: str) -> list[int]:
    """`encode_text`, through the segment cache while a `_same_segments` block is open."""
    if not _OPEN_BLOCKS[0]:
        return encode_text(tokenizer, text)
    key = (id(tokenizer), text)
    if key not in _SEGMENTS:
        _SEGMENTS[key] = encode_text(tokenizer, text)
    return _SEGMENTS[key]


def encode_chat(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of `messages` rendered by the tokenizer's chat template, where only the template's
    own text may become special tokens.

    1. render the template with each message's content wrapped in two private-use markers;
    2. check that dropping the markers gives the plain rendering (else retry with stripped content,
       which templates that `| trim` produce; else fall back to the template's tokenization, warned).
       A template that rewrites content inside (upper-casing) is fine: the markers hold its output;
    3. tokenize the text between the template's special tokens with `split_special_tokens=True`.
    Raises ValueError for a message without string content."""
    messages = [dict(m) for m in messages]
    for i, m in enumerate(messages):
        if not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} ({m.get('role')!r}) has no text content")
    plain = _render(tokenizer, messages, add_generation_prompt)
    open_, close = _markers(plain, messages)
    for transform in (lambda s: s, str.strip):
        wrapped = [{**m, "content": open_ + transform(m["content"]) + close} for m in messages]
        marked = _render(tokenizer, wrapped, add_generation_prompt)
        if marked.replace(open_, "").replace(close, "") == plain:
            return _encode_marked(tokenizer, marked, open_, close)
    warnings.warn(f"{type(tokenizer).__name__}'s chat template changes message text beyond trimming; its own "
                  "tokenization is used, so special-token characters in messages become control tokens", stacklevel=2)
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                              return_dict=False))


def _render(tokenizer, messages, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)


def _markers(rendered: str, messages) -> tuple[str, str]:
    """Two characters that occur nowhere in the template's output or the messages."""
    used = set(rendered).union(*(set(m["content"]) for m in messages))
    free = [c for c in _MARKER_CANDIDATES if c not in used]
    if len(free) < 2:
        raise ValueError("messages use every private-use marker character U+E000-U+E0FF")
    return free[0], free[1]


def _encode_marked(tokenizer, marked: str, open_: str, close: str) -> list[int]:
    """Ids of a rendering whose content spans sit between `open_` and `close`: special tokens are
    recognised only outside them, and the text between two recognised ones is tokenized in one call
    (as the tokenizer does itself), so merges at content edges match plain tokenization."""
    specials = special_token_texts(tokenizer)
    pattern = re.compile("|".join(re.escape(s) for s in specials)) if specials else None
    ids: list[int] = []
    text, inside = "", False
    for part in re.split(f"({re.escape(open_)}|{re.escape(close)})", marked):
        if part in (open_, close):
            inside = part == open_
            continue
        if inside or pattern is None:
            text += part
            continue
        last = 0
        for match in pattern.finditer(part):  # a special token placed by the template itself
            text += part[last:match.start()]
            ids += _segment_ids(tokenizer, text) if text else []
            ids.append(tokenizer.convert_tokens_to_ids(match.group()))
            text, last = "", match.end()
        text += part[last:]
    return ids + (_segment_ids(tokenizer, text) if text else [])


def encode_prompt_completion(tokenizer, prompt: Sequence[dict], completion: Sequence[dict]) -> tuple[list[int], int]:
    """(ids of prompt + completion, prompt_len): ids[:prompt_len] are exactly the ids of the prompt
    alone with the generation prompt (what generation continues: sampling, PPO), and the
    completion's tokens ids[prompt_len:] are its text tokenized from there on.

    Tokenizing the whole conversation in one piece can merge a token across the boundary: SmolLM2's
    "assistant\n" followed by an answer starting "  two" gives one "\n " token, so the prompt's ids
    are not a prefix of the whole (TRL's "Mismatch between tokenized prompt and the start of
    tokenized prompt+completion"). Split where the ids part, the answer would then start with a
    token the policy never sees after its prompt. Here the completion is tokenized after the
    prompt instead, as a sampled answer is. Only when the template renders the prompt differently
    inside the conversation (not a text prefix) is the split where the two ids part, as TRL's."""
    full, alone, shared = _split_where_ids_part(tokenizer, prompt, completion)
    if shared == len(alone):
        return full, shared
    rest = _completion_after_prompt(tokenizer, list(prompt), list(completion))
    return (alone + rest, len(alone)) if rest is not None else (full, shared)


def _split_where_ids_part(tokenizer, prompt, completion) -> tuple[list[int], list[int], int]:
    """(ids of the whole conversation in one piece, ids of the prompt alone with the generation
    prompt, where the two part)."""
    full = encode_chat(tokenizer, list(prompt) + list(completion))
    alone = encode_chat(tokenizer, prompt, add_generation_prompt=True)
    shared = next((i for i, (a, b) in enumerate(zip(alone, full)) if a != b), min(len(alone), len(full)))
    return full, alone, shared


def _completion_after_prompt(tokenizer, prompt: list[dict], completion: list[dict]) -> list[int] | None:
    """Ids of the conversation's rendering after the prompt's (with the generation prompt), message
    text kept as text, or None when the prompt's rendering is not a prefix of the conversation's."""
    messages = prompt + completion
    plain_full, plain_prompt = _render(tokenizer, messages, False), _render(tokenizer, prompt, True)
    if not plain_full.startswith(plain_prompt):
        return None
    open_, close = _markers(plain_full + plain_prompt, messages)
    for transform in (lambda s: s, str.strip):
        wrapped = [{**m, "content": open_ + transform(m["content"]) + close} for m in messages]
        marked_full = _render(tokenizer, wrapped, False)
        marked_prompt = _render(tokenizer, wrapped[:len(prompt)], True)
        unmark = lambda s: s.replace(open_, "").replace(close, "")  # noqa: E731
        if unmark(marked_full) == plain_full and unmark(marked_prompt) == plain_prompt \
                and marked_full.startswith(marked_prompt):
            return _encode_marked(tokenizer, marked_full[len(marked_prompt):], open_, close)
    return None


def end_of_turn_ids(tokenizer) -> list[int]:
    """Ids of the special tokens the chat template writes after an assistant message's text, before
    anything else (ChatML's `<|im_end|>`, Llama-3's `<|eot_id|>`, Gemma's `<end_of_turn>`): where a
    model trained on the template ends its answer. [] when the template ends a turn with plain text.

    The tokenizer's EOS is often another token (Qwen2.5 base: `<|endoftext|>`, a ChatML template), so
    generation that stops only at EOS runs past the end of the turn into a made-up next one."""
    special = set(tokenizer.all_special_ids) | {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()
                                                if t.special}
    ids, start = encode_prompt_completion(tokenizer, [{"role": "user", "content": "Hi"}],
                                          [{"role": "assistant", "content": "Hi"}])
    return next(([i] for i in ids[start:] if i in special), [])


def encode_assistant_turns(tokenizer, messages: Sequence[dict]) -> tuple[list[int], list[tuple[int, int]], int]:
    """(ids of the whole conversation, spans, turns not located) for a conversation whose last
    message is the assistant's: `spans` are the `(start, end)` of every assistant turn located in
    ids, end exclusive, in conversation order, each as `encode_prompt_completion` splits that turn
    alone (from where its content starts after the generation prompt, through its end-of-turn).

    The last turn is split as `encode_prompt_completion(messages[:-1], messages[-1:])` always is.
    Earlier turns are context of the later ones, tokenized with them in one piece (a token merged
    across an earlier turn's start stays merged: its span starts where the ids part).
    An earlier turn k is located when the ids of messages[:k+1] are a prefix of the whole
    conversation's: a template that renders earlier turns differently (one that strips earlier
    reasoning) breaks that, and so does a turn with no message before it (a template cannot render
    an empty prompt). Such turns are counted, not guessed at."""
    messages = list(messages)
    with _same_segments():
        full, last_start = encode_prompt_completion(tokenizer, messages[:-1], messages[-1:])
        spans, unlocated = [], 0
        for k, message in enumerate(messages[:-1]):
            if message["role"] != "assistant":
                continue
            if k == 0:
                unlocated += 1
                continue
            ids, _, start = _split_where_ids_part(tokenizer, messages[:k], [message])
            if full[:len(ids)] != ids or start >= len(ids):
                unlocated += 1
                continue
            spans.append((start, len(ids)))
    spans.append((last_start, len(full)))
    return full, spans, unlocated
