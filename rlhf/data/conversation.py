"""The conversation every stage carries, and the one way a model renders it.

A prompt is a conversation: a list of messages (`system`, `user`, `assistant`, ...) whose last
message is the user's. A plain string is the one-user-message case, and a list holding only one
user message is stored as that string, so `"Hi"` and `[{"role": "user", "content": "Hi"}]` are the
same record everywhere (same key, same split, same rendering).

Rendering: every model renders a conversation through its own tokenizer's chat template, with the
messages exactly as in the data. A system message in the data is kept. When there is none, no stage
adds one: the template's own default applies, the same for the policy (SFT, sampling, PPO, DPO,
eval) and the reward model (SmolLM2's template, for instance, inserts its default system prompt
"You are a helpful AI assistant named SmolLM, trained by Hugging Face").

    messages = as_messages(prompt)                       # list of {"role", "content"}
    prompt_key(prompt)                                   # stable key of the whole context
    encode_scored(tokenizer, prompt, completion, 512)    # ids for a reward model, cut to fit
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

Conversation = Union[str, list]  # a user string, or a list of {"role", "content"} messages

# When even the last user turn and the whole completion do not fit, the prompt keeps at least this
# share of max_length (its newest tokens) and the completion loses its tail: the reward model must
# still see what was asked, and the completion's start is where two answers usually differ.
MIN_PROMPT_SHARE = 0.25


def as_messages(prompt: Conversation) -> list[dict[str, str]]:
    """The conversation as a list of messages (a string becomes one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def normalize_prompt(messages: Conversation) -> Conversation:
    """The stored form: a string for a single user message, else the message list (a copy)."""
    msgs = as_messages(messages)
    if len(msgs) == 1 and msgs[0]["role"] == "user":
        return msgs[0]["content"]
    return msgs


def last_user_text(prompt: Conversation) -> str:
    """The last user message: what a labeler reads as "the question" and what a str reward function gets."""
    if isinstance(prompt, str):
        return prompt
    return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")


def prompt_key(prompt: Conversation) -> str:
    """A stable key of the whole context: the text for a single user message, else canonical JSON
    of every message. Two conversations that end in the same question have different keys."""
    normal = normalize_prompt(prompt)
    if isinstance(normal, str):
        return normal
    return json.dumps(normal, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def is_multi_turn(prompt: Conversation) -> bool:
    """True when the context is more than one user message (a system message or earlier turns)."""
    return not isinstance(normalize_prompt(prompt), str)


def earlier_turns(prompt: Conversation) -> list[dict[str, str]]:
    """Every message before the last user message (system prompt and earlier turns), for display."""
    msgs = as_messages(prompt)
    last = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=len(msgs))
    return msgs[:last]


# --- rendering ---------------------------------------------------------------------------------


def render_ids(tokenizer, prompt: Conversation, completion: str | None = None) -> list[int]:
    """Token ids of the chat template: the conversation ready for the assistant's turn
    (`completion` None), or the conversation followed by the assistant's `completion`."""
    from rlhf.tokens import encode_chat  # text stays text: only the template places control tokens

    messages = as_messages(prompt)
    if completion is None:
        return encode_chat(tokenizer, messages, add_generation_prompt=True)
    return encode_chat(tokenizer, messages + [{"role": "assistant", "content": completion}])


def render_text(tokenizer, prompt: Conversation, completion: str | None = None) -> str:
    """The same as `render_ids`, as text."""
    messages = as_messages(prompt)
    if completion is None:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": completion}], tokenize=False)


@dataclass
class Encoded:
    """One scored sequence and what was cut to make it fit: `ids` (at most max_length tokens),
    `turns_dropped` (oldest prompt messages removed), `prompt_tokens_cut` (oldest prompt tokens
    removed after that), `completion_tokens_cut` (the completion's tail removed, last resort)."""

    ids: list[int]
    turns_dropped: int = 0
    prompt_tokens_cut: int = 0
    completion_tokens_cut: int = 0

    @property
    def cut(self) -> bool:
        return bool(self.turns_dropped or self.prompt_tokens_cut or self.completion_tokens_cut)


def drop_oldest_turn(messages: list[dict]) -> list[dict] | None:
    """The conversation without its oldest exchange (system message kept), or None when only the
    last user message is left. Drops up to the next user message so roles still alternate."""
    system = [m for m in messages[:1] if m["role"] == "system"]
    rest = messages[len(system):]
    users = [i for i, m in enumerate(rest) if m["role"] == "user"]
    if len(users) < 2:
        return None
    return system + rest[users[1]:]


def fewest_turns_to_fit(messages: list[dict], fits: Callable[[list[dict]], bool]) -> tuple[int, list[dict]]:
    """`(turns dropped, conversation)`: the conversation with the fewest oldest exchanges dropped
    (`drop_oldest_turn`, repeatedly) for which `fits` is true, or with all but the last user message
    dropped when none fits.

    A binary search: `fits` is called about log2(turns) times instead of once per turn, because
    each call renders the whole conversation through a chat template and a 400-turn conversation
    dropped one turn at a time took 44 s per completion. It assumes what real templates give:
    dropping a turn never makes a conversation longer, so `fits` is false and then true."""
    if fits(messages):
        return 0, messages
    shorter = [messages]
    while (next_one := drop_oldest_turn(shorter[-1])) is not None:
        shorter.append(next_one)
    lo, hi = 1, len(shorter) - 1  # shorter[0] does not fit; the answer is in lo..hi (hi if none fits)
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(shorter[mid]):
            hi = mid
        else:
            lo = mid + 1
    return hi, shorter[hi]


def encode_scored(tokenizer, prompt: Conversation, completion: str, max_length: int,
                  max_prompt_length: int | None = None) -> Encoded:
    """Token ids of [conversation, assistant completion] for a reward model, at most `max_length`.

    What decides a preference is kept longest: first the prompt's oldest turns go (a system message
    stays), then the prompt's oldest tokens, and only when the completion alone leaves the prompt
    less than MIN_PROMPT_SHARE of max_length does the completion lose its tail. `max_prompt_length`
    caps the prompt's tokens the same way even when everything fits."""
    cap = max_prompt_length or max_length
    rendered: dict[int, tuple[list[int], list[int]]] = {}

    def render(messages: list[dict]) -> tuple[list[int], list[int]]:  # (prompt ids, full ids), once per length
        if len(messages) not in rendered:
            rendered[len(messages)] = (render_ids(tokenizer, messages), render_ids(tokenizer, messages, completion))
        return rendered[len(messages)]

    def fits(messages: list[dict]) -> bool:
        prompt_ids, full = render(messages)
        if full[:len(prompt_ids)] != prompt_ids:  # a template that rewrites earlier turns: stop here
            return True
        return len(prompt_ids) <= min(cap, max_length - (len(full) - len(prompt_ids)))

    turns, messages = fewest_turns_to_fit(as_messages(prompt), fits)
    prompt_ids, full = render(messages)
    if full[:len(prompt_ids)] != prompt_ids:  # cut the left
        return Encoded(full[-max_length:], turns, max(len(full) - max_length, 0), 0)
    answer = full[len(prompt_ids):]
    if len(prompt_ids) <= min(cap, max_length - len(answer)):
        return Encoded(full, turns)
    room = min(cap, max_length - len(answer))
    floor = min(len(prompt_ids), cap, max(1, int(MIN_PROMPT_SHARE * max_length)))
    keep_prompt = max(room, floor)
    keep_answer = max_length - keep_prompt
    kept_prompt = prompt_ids[len(prompt_ids) - keep_prompt:]
    return Encoded(kept_prompt + answer[:keep_answer], turns, len(prompt_ids) - keep_prompt,
                   max(len(answer) - keep_answer, 0))


# --- checks on read ----------------------------------------------------------------------------


def check_conversation(value: Any, where) -> Conversation:
    """A prompt field as a conversation: a non-empty string, or messages whose last is the user's.
    `where(field, problem)` builds the error (a DataError naming file and row)."""
    if isinstance(value, str):
        if not value.strip():
            raise where("prompt", "is empty")
        return value
    if not isinstance(value, list) or not value:
        raise where("prompt", "must be a string or a non-empty list of {role, content} messages")
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise where(f"prompt[{i}]", "each message needs 'role' and 'content'")
        if msg["role"] not in ("system", "user", "assistant"):
            raise where(f"prompt[{i}].role", f"unknown role {msg['role']!r} (use system, user, assistant)")
        if not isinstance(msg["content"], str):
            raise where(f"prompt[{i}].content", "must be a string")
    if value[-1]["role"] != "user":
        raise where(f"prompt[{len(value) - 1}].role", "the last message of a prompt must be the user's")
    if not value[-1]["content"].strip():
        raise where(f"prompt[{len(value) - 1}].content", "the last user message is empty")
    return normalize_prompt(value)


# --- functions written for string prompts --------------------------------------------------------


def takes_conversations(fn):
    """Mark `fn(prompts, ...)` (a reward_fn, a labeler preference, a judge) as taking whole
    conversations (str or message lists) instead of the last user message's text."""
    fn.takes_conversations = True
    return fn


def wants_conversations(fn) -> bool:
    """Whether `fn` takes whole conversations: marked with `takes_conversations`, or its first
    parameter is annotated with a message type (`Conversation`, `list[dict]`, ...). Any other
    function (unannotated, or annotated `str` / `list[str]`) gets the last user message's text,
    the signature every stage used before prompts were conversations."""
    if getattr(fn, "takes_conversations", False):
        return True
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params or params[0].annotation is inspect.Parameter.empty:
        return False
    hint = params[0].annotation if isinstance(params[0].annotation, str) else repr(params[0].annotation)
    return "Conversation" in hint or "dict" in hint


def prompts_for(fn, prompts: Sequence[Conversation]) -> list:
    """`prompts` as `fn` takes them: whole conversations, or the last user message's text."""
    return list(prompts) if wants_conversations(fn) else [last_user_text(p) for p in prompts]
