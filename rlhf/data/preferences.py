"""Preference rows in every published layout, read as published, into one `Ranking` record.

The layout is detected per row:

| layout | columns | becomes |
|---|---|---|
| rankings (ours, the labeling app's export) | `prompt`, `completions`, `ranking` tiers | the ranking as is |
| K completions with ratings (UltraFeedback raw) | `prompt` or `instruction`, `completions` (strings + `ratings`, or dicts with `response` and `overall_score` / `fine-grained_score` / `rating` / `score`) | tiers by rating, equal ratings tied |
| TRL standard, explicit prompt | `prompt` (str), `chosen`, `rejected` (str) | a 2-way ranking |
| TRL conversational, explicit prompt | `prompt` (messages), `chosen`, `rejected` (one assistant message each) | the same |
| TRL standard, implicit prompt | `chosen`, `rejected` (str, sharing their start) | shared start up to a word boundary = prompt |
| TRL conversational, implicit prompt | `chosen`, `rejected` (messages incl. the user turns) | shared messages = prompt |
| HH-RLHF (Anthropic) | `chosen`, `rejected` transcripts of `\\n\\nHuman:` / `\\n\\nAssistant:` turns | turns parsed, shared turns = prompt |
| UltraFeedback-binarized | `prompt` (str), `chosen`, `rejected` (messages repeating the user turn, or a whole conversation ending in `prompt`), `score_chosen`, `score_rejected` | the repeated turns are the prompt; equal scores a tie, chosen scored lower a bad row; scores -> margin when asked |
| SHP, SHP-2 (stanfordnlp) | `history`, `human_ref_A`, `human_ref_B`, `labels` (1: A preferred, 0: B), `score_A`, `score_B`, `score_ratio`, ... | a pair, the preferred comment first; a label the scores contradict is a bad row; no row filtered by `score_ratio` |
| Nectar (berkeley-nest) | `prompt` (an HH-RLHF transcript), `answers` (`answer`, `model`, `rank`: 1 best) | a K-way ranking, tiers by rank, equal ranks tied; turns parsed as HH-RLHF's |
| HelpSteer2 preference (nvidia) | `prompt` (turns marked `<extra_id_1>User` / `<extra_id_1>Assistant` parsed), `response_1`, `response_2`, `preference_strength` (-3..3) | a pair, the preferred response first; 0 a tie; \\|strength\\| -> margin when asked |

Other scalar columns (`source`, `labeler`, ...) are kept in `Ranking.meta`, so accuracy can be
reported per value of any of them.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rlhf.data.conversation import Conversation, as_messages, check_conversation, normalize_prompt

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
RATING_KEYS = ("overall_score", "fine-grained_score", "rating", "score")
TEXT_KEYS = ("response", "text", "content", "completion")
CORE = {"prompt", "messages", "instruction", "completions", "ranking", "ratings", "chosen", "rejected", "margin",
        "labeler", "flags", "seconds", "item_id", "guideline_version", "score_chosen", "score_rejected"}


def row_error(source, n):
    """`err(field, problem)` -> a DataError naming `source`, row `n` and the field."""
    from rlhf.data import DataError

    return lambda name, problem: DataError(source, n, name, problem)


def _completion_text(value: Any, name: str, err) -> str:
    """A completion as text: a string, or exactly one assistant message."""
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            raise err(name, "must be a string or one assistant message (a longer list needs the prompt split off: "
                            "drop the 'prompt' column to read it as TRL's implicit-prompt layout)")
        value = value[0].get("content")
    if value is None:
        raise err(name, "missing")
    if not isinstance(value, str):
        raise err(name, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise err(name, "is empty")
    return value


def _number(value: Any, name: str, err) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise err(name, f"must be a finite number, got {value!r}")
    return float(value)


def _meta(row: dict, used: tuple[str, ...] = ()) -> dict:
    """The row's other scalar columns; `used` names the columns a layout read as prompt or answers."""
    return {k: v for k, v in row.items()
            if k not in CORE and k not in used and isinstance(v, (str, int, float, bool))}


# --- rankings and ratings ---------------------------------------------------------------------


def row_conversation(row: dict, err) -> Conversation:
    """The conversation of a ranking or candidates row: `messages` (a trailing assistant message
    dropped), else `prompt` or `instruction` (a string or messages)."""
    if row.get("messages"):
        msgs = row["messages"]
        if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant":
            msgs = msgs[:-1]
        return check_conversation(msgs, lambda f, p: err(f.replace("prompt", "messages", 1), p))
    key = "prompt" if row.get("prompt") is not None else "instruction" if row.get("instruction") is not None else None
    if key is None:
        raise err("prompt", "missing")
    value = row[key]
    if isinstance(value, str) and is_hh(value):  # as in a pair's prompt column: turns, not markup in one message
        value = hh_prompt(value, key, err)
    return check_conversation(value, lambda f, p: err(f.replace("prompt", key, 1), p))


def row_flags(row: dict, err) -> list[str]:
    """A row's `flags` (none: []) as a list of strings. A plain string is refused rather than read
    as a list: `list("duplicate")` would be nine one-letter flags."""
    flags = row.get("flags")
    if flags is None:
        return []
    if not isinstance(flags, list):
        raise err("flags", f"must be a list of strings (e.g. [\"duplicate\"]), got {type(flags).__name__}")
    for i, flag in enumerate(flags):
        if not isinstance(flag, str):
            raise err(f"flags[{i}]", f"must be a string, got {type(flag).__name__}")
    return list(flags)


def tiers_from_ratings(ratings: list[float]) -> list[list[int]]:
    """Ranking tiers, best first, from one rating per completion (higher is better); equal ratings
    share a tier: ratings [3, 5, 3, 1] give [[1], [0, 2], [3]]."""
    order = sorted(range(len(ratings)), key=lambda i: (-ratings[i], i))
    tiers: list[list[int]] = []
    for i in order:
        if tiers and ratings[tiers[-1][0]] == ratings[i]:
            tiers[-1].append(i)
        else:
            tiers.append([i])
    return tiers


def _rated_completions(row: dict, err) -> tuple[list[str], list[float]]:
    completions = row["completions"]
    if all(isinstance(c, str) for c in completions):
        ratings = row.get("ratings")
        if not isinstance(ratings, list) or len(ratings) != len(completions):
            raise err("ratings", f"must be a list of {len(completions)} numbers, one per completion")
        return list(completions), [_number(r, f"ratings[{i}]", err) for i, r in enumerate(ratings)]
    texts, ratings = [], []
    for i, c in enumerate(completions):
        if not isinstance(c, dict):
            raise err(f"completions[{i}]", "must be a string or an object with a response and a rating")
        text_key = next((k for k in TEXT_KEYS if k in c), None)
        rating_key = next((k for k in RATING_KEYS if c.get(k) is not None), None)
        if text_key is None or rating_key is None:
            raise err(f"completions[{i}]", f"needs one of {', '.join(TEXT_KEYS)} and one of {', '.join(RATING_KEYS)}")
        texts.append(c[text_key])
        ratings.append(_number(c[rating_key], f"completions[{i}].{rating_key}", err))
    return texts, ratings


def parse_ranking_row(source, n, row):
    """Our ranking record, or K completions with one rating each (ratings -> tiers, ties kept)."""
    from rlhf.data import Ranking, check_ranking

    err = row_error(source, n)
    prompt = row_conversation(row, err)
    completions = row.get("completions")
    if not isinstance(completions, list) or len(completions) < 2:
        raise err("completions", "must be a list of at least 2 completions")
    if "ranking" in row:
        texts, tiers = completions, row["ranking"]
    elif "ratings" in row or any(isinstance(c, dict) for c in completions):
        texts, ratings = _rated_completions(row, err)
        tiers = tiers_from_ratings(ratings)
    else:
        raise err("ranking", "missing: a row with 'completions' needs 'ranking' tiers or one rating per completion")
    for i, c in enumerate(texts):
        if not isinstance(c, str) or not c.strip():
            raise err(f"completions[{i}]", "is empty" if isinstance(c, str) else "must be a string")
    checked = check_ranking(tiers, len(texts))
    if isinstance(checked, str):
        raise err("ranking", checked)
    seconds = row.get("seconds")
    if seconds is not None:
        seconds = _number(seconds, "seconds", err)
        if seconds < 0:
            raise err("seconds", f"is {seconds}: a labeling time cannot be negative")
    return Ranking(prompt=prompt, completions=list(texts), ranking=checked, labeler=str(row.get("labeler") or ""),
                   flags=row_flags(row, err), seconds=seconds, item_id=row.get("item_id"),
                   guideline_version=row.get("guideline_version"), meta=_meta(row))


# --- pairs --------------------------------------------------------------------------------------


def is_hh(text: str) -> bool:
    """Whether a string is an HH-RLHF transcript, with CRLF line ends too (a copy saved on Windows
    or through a spreadsheet): missing those, its markup was read as plain text."""
    text = text.replace("\r\n", "\n")
    return ASSISTANT in text or HUMAN in text or text.startswith(HUMAN.lstrip("\n"))


def parse_hh(text: str, name: str, err) -> list[dict[str, str]]:
    """An HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as messages (CRLF read as LF)."""
    if not isinstance(text, str):
        raise err(name, f"must be a string transcript, got {type(text).__name__}")
    text = text.replace("\r\n", "\n")
    if text.startswith(("Human:", "\nHuman:")):  # some copies lost the leading blank line
        text = "\n\n" + text.lstrip("\n")
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise err(name, "text before the first '\\n\\nHuman:' turn")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[who], "content": body.strip()} for who, body in zip(parts[1::2], parts[2::2])]


def hh_prompt(text: str, name: str, err) -> list[dict[str, str]]:
    """An HH-RLHF prompt transcript ("...\\n\\nHuman: question\\n\\nAssistant:") as messages, without
    the empty assistant turn it ends in (checked as a conversation by the caller)."""
    messages = parse_hh(text, name, err)
    if messages and messages[-1] == {"role": "assistant", "content": ""}:
        messages = messages[:-1]
    return messages


def split_shared_prefix(chosen: list[dict], rejected: list[dict], err) -> tuple[list[dict], dict, dict]:
    """(prompt, chosen answer, rejected answer) from two conversations that share every turn but
    the last assistant one; a DataError otherwise."""
    if chosen == rejected:
        raise err("rejected", "is identical to 'chosen': no preference to learn")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    while shared and chosen[shared - 1]["role"] != "user":  # the prompt must end before an assistant turn
        shared -= 1
    if not shared:
        raise err("chosen", "chosen and rejected share no prefix that ends before an assistant turn, "
                            "so there is no prompt to split off")
    for name, conv in (("chosen", chosen), ("rejected", rejected)):
        rest = conv[shared:]
        if len(rest) != 1 or rest[0]["role"] != "assistant":
            raise err(name, f"after the shared prompt ({shared} messages) it holds {len(rest)} messages; expected "
                            "exactly one assistant answer (the two must differ only in the last assistant turn)")
    return chosen[:shared], chosen[shared], rejected[shared]


def _split_text(chosen: str, rejected: str, err) -> tuple[str, str, str]:
    """TRL's standard implicit prompt: the shared start of two strings, cut back to a word boundary
    so neither completion starts mid-word (trl.data_utils.extract_prompt cuts before the space)."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    cut = max(chosen.rfind(" ", 0, shared + 1), chosen.rfind("\n", 0, shared + 1))
    if chosen == rejected:
        raise err("rejected", "is identical to 'chosen': no preference to learn")
    if cut <= 0 or not chosen[:cut].strip():
        raise err("chosen", "chosen and rejected share no leading text to split off as the prompt")
    return chosen[:cut], chosen[cut:], rejected[cut:]


def _as_conversation(value, name: str, err) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise err(name, "must be a non-empty list of {role, content} messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise err(f"{name}[{i}]", "each message needs a role (system, user, assistant) and string content")
    return as_messages(value)


def _implicit(row: dict, err) -> tuple[Conversation, str, str]:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, list) or isinstance(rejected, list):
        prompt, c, r = split_shared_prefix(_as_conversation(chosen, "chosen", err),
                                           _as_conversation(rejected, "rejected", err), err)
        return normalize_prompt(prompt), c["content"], r["content"]
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, str):
            raise err(name, "missing" if value is None else f"must be a string or messages, got {type(value).__name__}")
    if is_hh(chosen):
        prompt, c, r = split_shared_prefix(parse_hh(chosen, "chosen", err), parse_hh(rejected, "rejected", err), err)
        return normalize_prompt(prompt), c["content"], r["content"]
    return _split_text(chosen, rejected, err)


def _explicit(row: dict, err) -> tuple[Conversation, str, str]:
    """A pair with a `prompt` column. A chosen/rejected message list longer than one message repeats
    the conversation before its answer (UltraFeedback-binarized). That conversation is the prompt's
    messages, or, when `prompt` is a string, may be longer and end in that string as its last user
    message (a system message or earlier turns the string leaves out): then it is the prompt, and
    must be the same for chosen and rejected."""
    prompt, transcript = row["prompt"], isinstance(row["prompt"], str) and is_hh(row["prompt"])
    if transcript:  # HH-RLHF split into columns (prompt "\n\nHuman: ...\n\nAssistant:", chosen " answer")
        prompt = hh_prompt(prompt, "prompt", err)
    prompt = check_conversation(prompt, err)
    out, context = [], None
    for name in ("chosen", "rejected"):
        value = row.get(name)
        if isinstance(value, list) and len(value) > 1:
            conv = _as_conversation(value, name, err)
            before = conv[:-1]
            if before != as_messages(prompt):
                ends_in_prompt = isinstance(prompt, str) and before and before[-1] == {"role": "user", "content": prompt}
                if not ends_in_prompt:
                    raise err(name, "a message list of more than one message must be the prompt's messages and then "
                                    "the answer (as UltraFeedback-binarized writes them), or, for a string prompt, "
                                    "a conversation whose last user message is that string and then the answer")
                if context is not None and before != context:
                    raise err(name, "the conversation before the answer differs from chosen's: "
                                    "the two must differ only in the last assistant turn")
                context = before
            value = conv[-1:]
        out.append(_completion_text(value, name, err))
    if context is not None:
        prompt = check_conversation(context, err)
    if transcript:  # the answers, like the transcript's turns, without the space after "Assistant:"
        out = [text.strip() for text in out]
    return prompt, out[0], out[1]


def parse_pair_row(source, n, row, margin_from_scores: bool = False):
    """A chosen/rejected row in any published layout (module table) as a 2-way ranking, chosen first.
    `margin`: the row's `margin`, or `score_chosen - score_rejected` with `margin_from_scores`.
    A row's scores, when it has them, are read whether or not they make the margin: equal scores
    make the pair a tie (one tier, no pair to train on), a chosen scored below its rejected is a
    bad row (swapped columns), and a score that is not a finite number is a bad row."""
    from rlhf.data import Ranking

    err = row_error(source, n)
    prompt, chosen, rejected = _explicit(row, err) if row.get("prompt") is not None else _implicit(row, err)
    # Every layout ends in the same two checks (an implicit layout's answers come out of a split, so
    # an HH transcript ending in "\n\nAssistant:" gives an empty one): an empty answer is not a
    # completion, and two equal answers are no preference (DPO would train on a constant log 2).
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise err(name, "is empty")
    if chosen == rejected:
        raise err("rejected", "is identical to 'chosen': no preference to learn")
    margin = row.get("margin")
    margin = _number(margin, "margin", err) if margin is not None else None
    ranking = [[0], [1]]
    scores = _pair_scores(row, margin_from_scores, err)
    if scores is not None:
        chosen_score, rejected_score = scores
        if chosen_score < rejected_score:  # a negative margin would let rejected outscore chosen at no loss
            raise err("score_chosen", f"is {chosen_score:g}, below score_rejected ({rejected_score:g}): the chosen "
                                      "answer must score at least as high (are the columns swapped?)")
        if chosen_score == rejected_score:  # equal scores are a tie, not a preference (UltraFeedback holds some)
            ranking = [[0, 1]]
        elif margin_from_scores:
            margin = chosen_score - rejected_score
    return Ranking(prompt=prompt, completions=[chosen, rejected], ranking=ranking,
                   labeler=str(row.get("labeler") or ""), item_id=row.get("item_id"), margin=margin, meta=_meta(row))


def _pair_scores(row: dict, required: bool, err) -> tuple[float, float] | None:
    """`(score_chosen, score_rejected)` when the row has both (each a finite number), else None;
    with `required` (margin_from_scores) a missing one is an error."""
    missing = [name for name in ("score_chosen", "score_rejected") if row.get(name) is None]
    if missing and required:
        raise err(missing[0], "missing: margin_from_scores needs score_chosen and score_rejected")
    if missing:
        return None
    return _number(row["score_chosen"], "score_chosen", err), _number(row["score_rejected"], "score_rejected", err)


# --- SHP, Nectar, HelpSteer2 ----------------------------------------------------------------------


def _two_answers(row: dict, names: tuple[str, str], err) -> tuple[str, str]:
    """The two answer columns of a row as non-empty strings that differ."""
    first, second = (_completion_text(row.get(name), name, err) for name in names)
    if first == second:
        raise err(names[1], f"is identical to '{names[0]}': no preference to learn")
    return first, second


SHP_TEXT = ("history", "human_ref_A", "human_ref_B")


def parse_shp_row(source, n, row, margin_from_scores: bool = False):
    """A Stanford Human Preferences row (stanfordnlp/SHP, SHP-2) as a pair, chosen first: `history`
    (the post) is the prompt, `human_ref_A` / `human_ref_B` the two comments, `labels` 1 when A is
    preferred and 0 when B is. SHP prefers the comment with the higher score, so a row whose
    preferred comment does not score above the other (`score_A`, `score_B`, when present) is a bad
    row. Every row is read: `score_ratio` (how strong the preference is) stays in `meta` to filter or
    group by. The scores are upvote counts on each post's own scale, not a margin:
    `margin_from_scores` refuses the row."""
    from rlhf.data import Ranking

    err = row_error(source, n)
    if margin_from_scores:
        raise err("score_A", "margin_from_scores does not read SHP rows: score_A and score_B are upvote counts on "
                             "each post's own scale, not a preference margin (score_ratio is kept as a column)")
    if row.get("history") is None:
        raise err("history", "missing")
    prompt = check_conversation(row["history"], lambda f, p: err(f.replace("prompt", "history", 1), p))
    label = row.get("labels")
    if isinstance(label, bool) or label not in (0, 1):
        raise err("labels", "missing" if label is None else f"must be 1 (A preferred) or 0 (B preferred), got {label!r}")
    a, b = _two_answers(row, ("human_ref_A", "human_ref_B"), err)
    better, worse = ("A", "B") if label == 1 else ("B", "A")
    if row.get("score_A") is not None and row.get("score_B") is not None:
        score = {side: _number(row[f"score_{side}"], f"score_{side}", err) for side in ("A", "B")}
        if score[better] <= score[worse]:
            raise err("labels", f"is {label} ({better} preferred) but score_{better} ({score[better]:g}) is not above "
                                f"score_{worse} ({score[worse]:g}): SHP prefers the higher-scored comment")
    chosen, rejected = (a, b) if label == 1 else (b, a)
    return Ranking(prompt=prompt, completions=[chosen, rejected], ranking=[[0], [1]],
                   labeler=str(row.get("labeler") or ""), item_id=row.get("item_id"), meta=_meta(row, SHP_TEXT))


def parse_nectar_row(source, n, row, margin_from_scores: bool = False):
    """A Nectar row (berkeley-nest/Nectar) as one K-way ranking: `prompt` (an HH-RLHF transcript
    ending in "\\n\\nAssistant:", parsed into messages as the HH-RLHF reader does), `answers` (objects
    with `answer`, `model` and `rank`, 1 the best) -> tiers by rank, equal ranks tied. Answers are
    stripped of surrounding whitespace, as the HH-RLHF reader's turns are. An answer without a
    finite rank makes the whole row bad (no answer is left out silently), and so does one text
    given two different ranks (an answer both better and worse than itself). The same text at the
    same rank is kept: a tie gives no pair. `source` (a list of strings) is kept in `meta` joined by
    commas; the other scalar columns (`turns`, `num_responses`, `good_natured`) as they are."""
    from rlhf.data import Ranking

    err = row_error(source, n)
    prompt = row_conversation(row, err)
    answers = row.get("answers")
    if not isinstance(answers, list) or len(answers) < 2:
        raise err("answers", "must be a list of at least 2 objects with 'answer' and 'rank'")
    texts, ranks, first = [], [], {}
    for i, item in enumerate(answers):
        if not isinstance(item, dict):
            raise err(f"answers[{i}]", "must be an object with 'answer' and 'rank'")
        texts.append(_completion_text(item.get("answer"), f"answers[{i}].answer", err).strip())
        if item.get("rank") is None:
            raise err(f"answers[{i}].rank", "missing: every answer needs its rank (1 = best)")
        ranks.append(_number(item["rank"], f"answers[{i}].rank", err))
        j = first.setdefault(texts[i], i)
        if ranks[j] != ranks[i]:
            raise err(f"answers[{i}].answer", f"is the text of answers[{j}], ranked {ranks[j]:g} there and "
                                              f"{ranks[i]:g} here: one text cannot be both better and worse")
    meta = _meta(row)
    if isinstance(row.get("source"), list) and all(isinstance(s, str) for s in row["source"]):
        meta["source"] = ",".join(row["source"])
    return Ranking(prompt=prompt, completions=texts, ranking=tiers_from_ratings([-r for r in ranks]),
                   labeler=str(row.get("labeler") or ""), item_id=row.get("item_id"), meta=meta)


STEERLM_MARK = "<extra_id_1>"
_STEERLM_TURN = re.compile(r"\n?<extra_id_1>(User|Assistant)\n?")


def steerlm_turns(text: str, name: str, err) -> list[dict[str, str]]:
    """A HelpSteer2 multi-turn prompt as messages. Its dataset card gives the form
    "{user turn 1}\\n<extra_id_1>Assistant\\n{assistant turn 1}\\n<extra_id_1>User\\n{user turn 2}":
    the first turn is the user's, each later one follows its marker; turns must alternate."""
    parts = _STEERLM_TURN.split(text)
    roles = ["user"] + [{"User": "user", "Assistant": "assistant"}[who] for who in parts[1::2]]
    messages = [{"role": role, "content": body.strip()} for role, body in zip(roles, [parts[0]] + parts[2::2])]
    for i, message in enumerate(messages):
        if not message["content"]:
            raise err(name, f"turn {i + 1} ({message['role']}) of the {STEERLM_MARK} conversation is empty")
        if i and messages[i - 1]["role"] == message["role"]:
            raise err(name, f"turn {i + 1} is a second '{message['role']}' turn in a row: a HelpSteer2 prompt "
                            f"alternates user and assistant turns, marked {STEERLM_MARK}User / {STEERLM_MARK}Assistant")
    return messages


HELPSTEER2_TEXT = ("response_1", "response_2")


def parse_helpsteer2_row(source, n, row, margin_from_scores: bool = False):
    """A HelpSteer2 preference row (nvidia/HelpSteer2, preference/) as a pair, chosen first:
    `preference_strength` from -3 (response_1 much better) to 3 (response_2 much better); 0 (about
    the same) is a tie, one tier and no pair, as equal scores are. A multi-turn `prompt` (turns
    marked <extra_id_1>User / <extra_id_1>Assistant) is parsed into messages. `margin_from_scores`:
    |preference_strength| is the margin. `preference_statement`, `preference_elaboration` and `split`
    are kept in `meta`."""
    from rlhf.data import Ranking

    err = row_error(source, n)
    prompt = row.get("prompt")
    if prompt is None:
        raise err("prompt", "missing")
    if isinstance(prompt, str) and STEERLM_MARK in prompt:
        prompt = steerlm_turns(prompt, "prompt", err)
    prompt = check_conversation(prompt, err)
    first, second = _two_answers(row, HELPSTEER2_TEXT, err)
    strength = row.get("preference_strength")
    if strength is None:
        raise err("preference_strength", "missing")
    strength = _number(strength, "preference_strength", err)
    if strength not in (-3, -2, -1, 0, 1, 2, 3):
        raise err("preference_strength", f"must be an integer from -3 (response_1 much better) to 3 (response_2 "
                                         f"much better), got {strength:g}")
    margin = row.get("margin")
    margin = _number(margin, "margin", err) if margin is not None else None
    if margin_from_scores and strength:
        margin = abs(strength)
    completions = [second, first] if strength > 0 else [first, second]
    return Ranking(prompt=prompt, completions=completions, ranking=[[0], [1]] if strength else [[0, 1]],
                   labeler=str(row.get("labeler") or ""), item_id=row.get("item_id"), margin=margin,
                   meta=_meta(row, HELPSTEER2_TEXT))


# Published layouts read by their own reader, known by their columns (a row with `chosen`/`rejected`
# or `completions` is read as those first).
LAYOUT_READERS = (
    (("human_ref_A", "human_ref_B"), parse_shp_row),
    (("response_1", "response_2"), parse_helpsteer2_row),
    (("answers",), parse_nectar_row),
)


def layout_reader(row: dict):
    """The reader of a row in SHP, HelpSteer2's preference or Nectar's layout, else None."""
    return next((reader for columns, reader in LAYOUT_READERS if all(c in row for c in columns)), None)


# --- layouts not read ----------------------------------------------------------------------------

# Published layouts this reader does not take, known by their columns, and why.
UNSUPPORTED = (
    (("completion", "label"), "a KTO-style unpaired row (prompt, completion, label; one answer marked good or bad "
                              "is no preference between two answers)"),
)
SUPPORTED = ("chosen + rejected (TRL's layouts, HH-RLHF, UltraFeedback-binarized), completions + ranking tiers "
             "or one rating per completion, or SHP, Nectar or HelpSteer2 preference columns")


def unsupported_row(source, n, row: dict):
    """The DataError for a row in no layout this reader takes: which known layout it is (KTO), or
    its columns, and what is supported."""
    from rlhf.data import DataError

    what = next((name for columns, name in UNSUPPORTED if all(c in row for c in columns)), None)
    what = what or f"a row with the columns {', '.join(sorted(map(str, row))[:8]) or '(none)'}"
    return DataError(source, n, None, f"{what} is not a preference layout read here: a row needs {SUPPORTED}; "
                                      "convert the file to one of them")


# --- writing TRL's layouts ------------------------------------------------------------------------


def trl_pair_rows(records: list[dict], form: str = "explicit") -> list[dict]:
    """TRL preference rows, one per strictly ordered pair of every ranking record (ties give none),
    with `item_id`, `tier_gap` and `labeler` beside them.

    form "explicit": `prompt` + `chosen` + `rejected`; "implicit": `chosen` and `rejected` hold the
    whole conversation (TRL's RewardTrainer recommends it). The file is conversational (message
    lists) when any context is more than one user message, or when the form is implicit (strings
    joined together would lose the boundary between prompt and answer); else standard strings.
    One layout per file: a datasets column cannot mix strings and message lists."""
    from rlhf.data import ranking_pairs

    if form not in ("explicit", "implicit"):
        raise ValueError(f"unknown form {form!r} (use explicit or implicit)")
    conversational = form == "implicit" or any(not isinstance(normalize_prompt(r["prompt"]), str) for r in records)
    out = []
    for r in records:
        prompt = as_messages(r["prompt"]) if conversational else normalize_prompt(r["prompt"])
        for better, worse, gap in ranking_pairs(r["ranking"]):
            chosen, rejected = r["completions"][better], r["completions"][worse]
            if conversational:
                chosen, rejected = ([{"role": "assistant", "content": c}] for c in (chosen, rejected))
            row = {"prompt": prompt, "chosen": chosen, "rejected": rejected} if form == "explicit" else \
                {"chosen": prompt + chosen, "rejected": prompt + rejected}
            out.append({**row, "item_id": r.get("item_id"), "tier_gap": gap, "labeler": r.get("labeler", "")})
    return out
