"""Simulated labelers: a rule-based STAND-IN for people, not a model of human judgement.

Use them where no people are at hand: demos, tests, the end-to-end pipeline, and research on
label noise (how many noisy labels does a reward model need?). Real preference data comes from
people in the labeling app (`rlhf label`); nothing here pretends otherwise, and every ranking a
simulated labeler writes carries `guideline_version="simulated"`.

A labeler scores each completion with a *preference* `score(prompt, completion) -> float`, groups
scores within `tie_tolerance` into tiers (ties are allowed, as in the app), and with probability
`noise` slips: it swaps one random pair of adjacent tiers, the kind of mistake a person makes
(rarely best for worst). Several labelers with their own seeds slip independently, so they
disagree; `make_labelers(..., disagreement=d)` picks the noise that makes two labelers' rankings
of an item differ at rate about `d`.

Built-in preferences (`PREFERENCES`). The first seven are the suite (`SUITE`) that
`benchmarks/preference_suite.py` runs, one rule of each kind, in both length directions. "usable":
share of 64 K=4 candidate sets of the SFT policy (embedded default, 40 new tokens, shipped prompts)
with at least one strict preference under the rule:

| name | kind | prefers | usable |
|---|---|---|---|
| `concise` (default) | length, shorter | answers that end properly (not cut off), then shorter ones, in 8-word buckets; under 4 words counts as too short | 0.98 |
| `detailed` | length, longer | more words, in 6-word buckets, +1 for a finished answer: a cut-off long answer still beats a short one | 0.95 |
| `on_topic` | content words | more of the question's own content words (4+ letters, not stop words) used in the answer, capped at 4 | 0.84 |
| `numeric` | numbers, facts | more distinct numbers (quantities, years, steps), capped at 4 | 0.55 |
| `plain` | tone | plain words: fewer letters per word on average, in steps of 0.5, whatever the answer's length | 0.98 |
| `short_sentences` | structure | fewer words per sentence on average, in steps of 3 | 1.00 |
| `line_breaks` | format | more non-empty lines (steps, lists, paragraphs), capped at 6 | 0.55 |
| `polite` | tone | more courteous / enthusiastic phrases: "please", "thank", "happy to", "glad", "!" ... (capped at 4) | 0.17 |
| `structured` | structure | more bullet or numbered lines (capped at 5) | 0.23 |
| `no_markdown` | format | fewer Markdown marks (bold, backticks, headings, bullet lines), capped at 6 | 0.14 |

A preference that ties almost every set of candidates gives a reward model no pairs to learn from:
`polite`, `structured` and `no_markdown` leave over three quarters of the sets one tie, so they are
not in the suite. `learnability(candidates, name)` measures it on your own samples. Rules
read the prompt as a string or a conversation (a list of {role, content} messages; `prompt_text`).

`concise` is the default because a small reward model learns it from a few hundred rankings and
PPO can move a 135M policy toward it in tens of steps (length and a final full stop are easy
features). Plug in your own preference:

    register_preference("formal", lambda prompt, text: -text.count("!"))
    SimulatedLabeler("formal")                      # by name (also `rlhf simulate --preference formal`
    SimulatedLabeler(my_score_function)             #  after registering, or `--preference pkg.mod:fn`)

    lab = SimulatedLabeler("concise", noise=0.1, seed=0, name="sim-0")
    lab.rank("prompt", ["A.", "B is longer.", "C is cut"])   # tiers best first, e.g. [[0], [1], [2]]
    lab.judge("prompt", a, b)                                  # 1.0 a wins, 0.0 b wins, 0.5 tie
"""

from __future__ import annotations

import importlib
import math
import random
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Union
from rlhf.stages import ConfigError, save_resolved_config

from rlhf.data.conversation import takes_conversations

Preference = Callable[[str, str], float]
PREFERENCES: dict[str, Preference] = {}
GUIDELINE_VERSION = "simulated"
SIGNATURE = "fn(prompt, completion) -> float"


def check_preference(fn, name: str, keywords: tuple[str, ...] = ()) -> Preference:
    """`fn` if it can be called with two positional arguments (prompt, completion), plus those of
    `keywords` it names (the caller fills them: a PPO reward rule may require a prompt column such
    as `answer`), else ConfigError; one whose `missing` attribute lists the arguments `fn` requires
    beyond the two that are not among `keywords` (the caller can then say where they were looked
    for: `rlhf.ppo.trainer.preference_reward_fn` names the prompts file)."""
    import inspect

    if not callable(fn):
        raise ConfigError(f"preference {name!r} is not a function (got {type(fn).__name__}): it must be {SIGNATURE}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check here
        return fn
    # The caller passes no keyword that the two positional arguments fill (rlhf.ppo.rollout.accepted_keywords).
    params = signature.parameters.values()
    filled = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:2]
    missing = [p.name for p in params if p.name not in filled and p.name not in keywords and p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing and len(filled) == 2:
        err = ConfigError(f"preference {name!r} cannot be called as {SIGNATURE}: it also requires "
                          f"{', '.join(map(repr, missing))}, which it is not given")
        err.missing = missing
        raise err
    try:
        signature.bind("prompt", "completion", **{k: None for k in keywords
                                                  if k in signature.parameters and k not in filled})
    except TypeError as err:
        raise ConfigError(f"preference {name!r} cannot be called as {SIGNATURE} ({err})") from None
    return fn


def register_preference(name: str, fn: Preference | None = None):
    """Register `fn(prompt, completion) -> float` (higher is better) under `name`; also a decorator.
    A function that cannot be called with those two arguments raises ValueError here."""
    def add(f: Preference) -> Preference:
        PREFERENCES[name] = check_preference(f, name)
        return f

    return add(fn) if fn is not None else add


# --- built-in preferences (pure) ---------------------------------------------------------------

ENDINGS = (".", "!", "?", ")", '"', "'", "`", "*", "]")
CONCISE_BUCKET_WORDS = 8
CONCISE_MIN_WORDS = 4
POLITE_MARKERS = ("please", "thank", "happy to", "glad", "of course", "certainly", "sure", "!")
LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+\S")


def ends_properly(text: str) -> bool:
    """The answer ends like a finished sentence, not cut off mid-word by a token limit."""
    return text.rstrip().endswith(ENDINGS)


@register_preference("concise")
def concise(prompt: str, completion: str) -> float:
    """Finished beats cut off (by 3 buckets); then shorter wins, in 8-word buckets so near-equal
    lengths tie. Answers under 4 words score like 16-23 words: too short to help.

    Worked values: "Paris is the capital of France." (6 words, ends) -> 3 - 0 = 3;
    a finished 20-word answer -> 3 - 2 = 1; a cut-off 35-word answer -> 0 - 4 = -4; "" -> -10."""
    words = len(completion.split())
    if words == 0:
        return -10.0
    bucket = words // CONCISE_BUCKET_WORDS if words >= CONCISE_MIN_WORDS else 2
    return (3.0 if ends_properly(completion) else 0.0) - bucket


@register_preference("polite")
def polite(prompt: str, completion: str) -> float:
    """Count of courteous / enthusiastic markers, capped at 4 so a wall of "!!!!" does not win.
    Ties almost everything on the embedded default's samples (83% of K=4 sets are one tie): little
    signal for a reward model."""
    text = completion.lower()
    return float(min(sum(text.count(marker) for marker in POLITE_MARKERS), 4))


@register_preference("structured")
def structured(prompt: str, completion: str) -> float:
    """Bullet or numbered lines (capped at 5): prefers answers laid out as lists. Ties 77% of the
    embedded default's K=4 sets (few lists fit in 40 tokens): little signal; see `line_breaks`."""
    items = sum(1 for line in completion.splitlines() if LIST_ITEM.match(line))
    return float(min(items, 5))


# --- the preference suite: rules of other kinds, some where longer answers win (pure) --------------
# Each rule takes `prompt` as a string or a conversation (a list of {role, content} messages) and
# reads only the last user message from it (`prompt_text`). Scores move in whole steps, so answers
# that differ only a little tie, as a person's would.

STOP_WORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it its "
    "make me more most my not of on or our should so some than that the their them then there these they this "
    "those to too use used using very was we were what when where which while who whom why will with would you "
    "your about after also any because before between both each few give good just like many much other over "
    "same such tell through under until up want well explain describe".split()
)
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
MARKDOWN = re.compile(r"\*\*|__|`|^\s*#+\s|^\s*[-*\u2022]\s", re.MULTILINE)
DETAILED_BUCKET_WORDS = 6
DETAILED_MAX_WORDS = 200
ON_TOPIC_CAP = 4
NUMERIC_CAP = 4
PLAIN_STEP = 0.5  # letters per word
SENTENCE = re.compile(r"[^.!?]+[.!?]")
SENTENCE_STEP_WORDS = 3
LINES_CAP = 6


def prompt_text(prompt) -> str:
    """The text a rule reads from a prompt: the prompt itself when it is a string, else the content
    of the last user message of a conversation (a list of {role, content} dicts, or an object with
    `.messages`). An empty or unrecognised prompt gives ""."""
    if isinstance(prompt, str):
        return prompt
    messages = getattr(prompt, "messages", prompt)
    if isinstance(messages, (list, tuple)):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role", "user") == "user":
                return str(message.get("content") or "")
    return ""


def content_words(text: str) -> set[str]:
    """Lower-cased words of 4+ letters that are not stop words, a trailing plural "s" dropped."""
    out = set()
    for word in WORD.findall(text.lower()):
        word = word.strip("'-")
        if len(word) >= 4 and word not in STOP_WORDS:
            out.add(word[:-1] if word.endswith("s") and not word.endswith("ss") else word)
    return out


@register_preference("detailed")
def detailed(prompt, completion: str) -> float:
    """Longer wins: one point per 6 words (up to 200 words), plus one for a finished answer. The
    mirror of `concise`: an answer cut off mid-sentence still beats a much shorter finished one.

    Worked values: "Paris." -> 0 + 1 = 1; a finished 21-word answer -> 3 + 1 = 4; a cut-off 21-word
    answer -> 3; "" -> 0."""
    words = min(len(completion.split()), DETAILED_MAX_WORDS)
    return float(words // DETAILED_BUCKET_WORDS + (1 if words and ends_properly(completion) else 0))


@register_preference("on_topic")
def on_topic(prompt, completion: str) -> float:
    """Content words: how many of the question's own content words (4+ letters, not stop words,
    plural "s" ignored) the answer uses, capped at 4. An answer that stays on the question's terms
    beats one that drifts; a longer answer has more room to cover them.

    Worked value: prompt "How do airplanes stay in the air?" has {airplane, stay}; "Airplanes stay
    up because wings push air down." uses both -> 2."""
    return float(min(len(content_words(prompt_text(prompt)) & content_words(completion)), ON_TOPIC_CAP))


@register_preference("numeric")
def numeric(prompt, completion: str) -> float:
    """Numbers and facts: distinct numbers in the answer (quantities, years, steps), capped at 4.
    Specific answers win: "Boil for 10 minutes at 100 C" (2) beats "Boil it for a while" (0)."""
    return float(min(len(set(NUMBER.findall(completion))), NUMERIC_CAP))


@register_preference("plain")
def plain(prompt, completion: str) -> float:
    """Tone: plain words win. Minus the mean letters per word, in steps of 0.5, so "use" beats
    "utilise" whatever the answer's length. An answer with no words scores -10.

    Worked values: "It is a big dog." (2.2 letters per word) -> -2.0; "Photosynthesis generates
    carbohydrates." (12.0) -> -12.0."""
    words = WORD.findall(completion)
    if not words:
        return -10.0
    mean = sum(len(w) for w in words) / len(words)
    return -round(mean / PLAIN_STEP) * PLAIN_STEP


@register_preference("short_sentences")
def short_sentences(prompt, completion: str) -> float:
    """Structure: short sentences win. Minus the mean words per complete sentence (text up to a
    ".", "!" or "?"), in 3-word buckets, whatever the number of sentences; an answer with no
    complete sentence scores -20 (below any answer that has one).

    Worked values: "It rains. Take a coat." (2 sentences, 2.5 words each) -> 0; "When it rains
    you should take a coat with you." (10 words) -> -3."""
    sentences = [s for s in SENTENCE.findall(completion) if s.split()]
    if not sentences:
        return -20.0
    mean = sum(len(s.split()) for s in sentences) / len(sentences)
    return 0.0 - mean // SENTENCE_STEP_WORDS


@register_preference("line_breaks")
def line_breaks(prompt, completion: str) -> float:
    """Format: answers laid out over several lines win (steps, a list, short paragraphs): the
    number of non-empty lines, capped at 6. "Mix.\nBake.\nServe." (3) beats one paragraph (1)."""
    return float(min(sum(1 for line in completion.splitlines() if line.strip()), LINES_CAP))


@register_preference("no_markdown")
def no_markdown(prompt, completion: str) -> float:
    """Format: plain prose wins. Minus the count of Markdown marks (bold `**`/`__`, backticks,
    headings, bullet lines), capped at 6; an empty answer scores -7 (below any answer). Ties 86% of
    the embedded default's K=4 sets (its short answers rarely use Markdown): little signal."""
    if not completion.strip():
        return -7.0
    return -float(min(len(MARKDOWN.findall(completion)), 6))


# The suite `benchmarks/preference_suite.py` runs: one rule of each kind, both length directions,
# each giving a strict preference on most K=4 sets of the SFT policy's samples. `polite`,
# `structured` and `no_markdown` stay registered but tie on 77-86% of those sets (README).
SUITE = ("concise", "detailed", "on_topic", "numeric", "plain", "short_sentences", "line_breaks")


def import_from_working_folder(module: str):
    """`importlib.import_module(module)`, also finding a module or package in the working folder.

    A console script (`rlhf simulate ...`) runs with its own bin folder, not the working folder, on
    sys.path, so a user's `my_rules.py` next to their data would not import, while `python -m` and
    `python script.py` find it. Like gunicorn's and uvicorn's `module:app`, the working folder is
    then searched, appended last so it never shadows an installed package. ImportError otherwise."""
    import os
    import sys

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        cwd = os.getcwd()
        if err.name != module.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(module)


def get_preference(preference: Union[str, Preference], keywords: tuple[str, ...] = ()) -> Preference:
    """A preference by registered name, by `package.module:function` (importable, or a module in the
    working folder), or the callable itself.

    Checked when it is loaded, not at the first item: a module that does not import, a missing
    function or one that cannot be called as `fn(prompt, completion)` (plus the `keywords` it names,
    which the caller fills) raises ConfigError."""
    if callable(preference):
        return check_preference(preference, getattr(preference, "__name__", repr(preference)), keywords)
    if preference in PREFERENCES:
        return PREFERENCES[preference]
    if ":" in preference:
        module, _, attr = preference.partition(":")
        try:
            fn = getattr(import_from_working_folder(module), attr)
        except ImportError as err:
            raise ConfigError(f"preference {preference!r}: cannot import {module!r} ({err})") from None
        except AttributeError:
            raise ConfigError(f"preference {preference!r}: module {module!r} has no {attr!r}") from None
        return check_preference(fn, preference, keywords)
    raise ConfigError(f"unknown preference {preference!r}: use one of {sorted(PREFERENCES)}, "
                     "a 'package.module:function', or register_preference(name, fn)")


# --- scores -> tiers -> ranks (pure) -----------------------------------------------------------


def tiers_from_scores(scores: list[float], tolerance: float = 0.0) -> list[list[int]]:
    """Indexes grouped into tiers, best first; a score within `tolerance` of its tier's best joins
    that tier (measured from the tier's first member, so ties do not chain without limit).

    [3, 1, 3, 0] -> [[0, 2], [1], [3]]"""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    tiers: list[list[int]] = []
    for i in order:
        if tiers and scores[tiers[-1][0]] - scores[i] <= tolerance:
            tiers[-1].append(i)
        else:
            tiers.append([i])
    return tiers


def swap_adjacent_tiers(tiers: list[list[int]], rng: random.Random) -> list[list[int]]:
    """A slip: two neighbouring tiers trade places (no change when there is only one tier)."""
    if len(tiers) < 2:
        return [list(t) for t in tiers]
    i = rng.randrange(len(tiers) - 1)
    out = [list(t) for t in tiers]
    out[i], out[i + 1] = out[i + 1], out[i]
    return out


def ranks_from_tiers(tiers: list[list[int]], k: int) -> list[int]:
    """Dense ranks (1 = best, ties share a rank) per position, as the labeling store's `submit`
    takes them. [[2], [1, 3], [0]] -> [3, 2, 1, 2]"""
    ranks = [0] * k
    for rank, tier in enumerate(tiers, start=1):
        for i in tier:
            ranks[i] = rank
    return ranks


def outcome_from_tiers(tiers: list[list[int]]) -> float:
    """For two completions [a, b]: 1.0 a ranked above b, 0.0 below, 0.5 tied."""
    return 0.5 if len(tiers) == 1 else float(tiers[0] == [0])


def noise_for_disagreement(disagreement: float) -> float:
    """Per-labeler slip rate p at which two independent labelers differ at about the given rate:
    they agree when neither slips, (1 - p)^2 (ignoring the rarer case of both making the same
    slip), so p = 1 - sqrt(1 - disagreement)."""
    if not 0 <= disagreement < 1:
        raise ValueError(f"disagreement must be in [0, 1), got {disagreement}")
    return 1 - math.sqrt(1 - disagreement)


# --- labelers ----------------------------------------------------------------------------------


class SimulatedLabeler:
    """Ranks completions by a preference, with ties and a settable slip rate (see module docs)."""

    def __init__(self, preference: Union[str, Preference] = "concise", noise: float = 0.1, seed: int = 0,
                 name: str | None = None, tie_tolerance: float = 0.0):
        if not 0 <= noise <= 1:
            raise ValueError(f"noise must be in [0, 1], got {noise}")
        self.preference = preference if isinstance(preference, str) else getattr(preference, "__name__", "custom")
        self.score_fn = get_preference(preference)
        self.noise, self.seed, self.tie_tolerance = noise, seed, tie_tolerance
        self.name = name or f"sim-{seed}"
        self.rng = random.Random(seed)

    def __repr__(self) -> str:
        return f"SimulatedLabeler({self.preference!r}, noise={self.noise}, seed={self.seed}, name={self.name!r})"

    def scores(self, prompt, completions: list[str]) -> list[float]:
        """One score per completion. `prompt` is a conversation (str or messages); a preference gets
        the last user message's text unless it declares it takes conversations
        (rlhf.data.conversation.wants_conversations). ConfigError (a ValueError) when a score is not a
        finite number: the preference is at fault, not the data."""
        from rlhf.data.conversation import prompts_for

        (seen,) = prompts_for(self.score_fn, [prompt])
        out = []
        for k, c in enumerate(completions):
            score = self.score_fn(seen, c)
            try:
                if isinstance(score, (str, bytes)):  # float("1.5") would pass a string through
                    raise TypeError
                value = float(score)
            except (TypeError, ValueError):
                raise ConfigError(f"preference {self.preference!r} returned {score!r} for completion {k}, not a number: "
                                  f"it must be {SIGNATURE}") from None
            if not math.isfinite(value):
                # a NaN score would sort at random and make the tiers meaningless
                raise ConfigError(f"preference {self.preference!r} returned {value} for a completion: scores must "
                                  f"be finite (completion {k})")
            out.append(value)
        return out

    @takes_conversations
    def rank(self, prompt, completions: list[str]) -> list[list[int]]:
        """Tiers best first, indexes into `completions`; with probability `noise`, one slip."""
        tiers = tiers_from_scores(self.scores(prompt, completions), self.tie_tolerance)
        if self.rng.random() < self.noise:
            tiers = swap_adjacent_tiers(tiers, self.rng)
        return tiers

    @takes_conversations  # scores() hands each preference the form it declares
    def judge(self, prompt, a: str, b: str) -> float:
        """1.0 when `a` is preferred, 0.0 when `b` is, 0.5 for a tie (the eval judge interface)."""
        return outcome_from_tiers(self.rank(prompt, [a, b]))

    __call__ = judge


def make_labelers(num_labelers: int = 3, preference: Union[str, Preference] = "concise", noise: float = 0.1,
                  seed: int = 0, disagreement: float | None = None) -> list[SimulatedLabeler]:
    """`num_labelers` labelers sharing a preference, each with its own seed (so its own slips).
    With `disagreement`, the noise is set so two labelers differ on about that share of items."""
    if num_labelers < 1:
        raise ValueError("num_labelers must be at least 1")
    if disagreement is not None:
        noise = noise_for_disagreement(disagreement)
    return [SimulatedLabeler(preference, noise=noise, seed=seed * 1000 + i, name=f"sim-{i}") for i in range(num_labelers)]


def simulated_seconds(completions: list[str]) -> float:
    """A plausible time to read and rank: 5 s plus 4 words a second (for the `seconds` field)."""
    return round(5.0 + sum(len(c.split()) for c in completions) / 4.0, 1)


def simulate(candidates: list[dict], labelers: list[SimulatedLabeler], labels_per_item: int = 1) -> list[dict]:
    """Ranking records (docs/architecture.md#the-data-contracts) for every candidate row, each labeled by `labels_per_item`
    distinct labelers taken in rotation. Rows with an empty completion are skipped: the ranking
    record cannot hold one (a person would flag such an item rather than rank it). The record's
    `prompt` is the item's whole conversation (its `messages` when present)."""
    from rlhf.data.conversation import normalize_prompt

    if not 1 <= labels_per_item <= len(labelers):
        raise ValueError(f"labels_per_item must be between 1 and the number of labelers ({len(labelers)}), got {labels_per_item}")
    out = []
    for n, item in enumerate(candidates):
        if any(not c.strip() for c in item["completions"]):
            continue
        for j in range(labels_per_item):
            labeler = labelers[(n + j) % len(labelers)]
            conversation = normalize_prompt(item.get("messages") or item["prompt"])
            out.append({
                "prompt": conversation, "completions": list(item["completions"]),
                "ranking": _rank_naming_item(labeler, conversation, item["completions"], str(item.get("id", n)), n + 1),
                "labeler": labeler.name,
                "flags": [], "seconds": simulated_seconds(item["completions"]),
                "item_id": str(item.get("id", n)), "guideline_version": GUIDELINE_VERSION,
            })
    return out


def _rank_naming_item(labeler, conversation, completions: list[str], item_id: str, row: int | None = None):
    """`labeler.rank`, with the candidate's id and row added to a preference's bad-score error."""
    try:
        return labeler.rank(conversation, completions)
    except ConfigError as err:
        where = f"candidate {item_id!r}" + (f", row {row} of the candidates" if row is not None else "")
        raise ConfigError(f"{err} ({where})") from None


def simulate_into_store(store, labelers: list[SimulatedLabeler]) -> int:
    """Label a labeling database the way people do: each labeler in turn asks `next_item`, ranks
    the completions in the order shown, and `submit`s dense ranks (the store maps them back to
    the original order and enforces labels per item). Returns the number of labels submitted."""
    for labeler in labelers:
        if store.get_user(labeler.name) is None:
            # Simulated accounts exist only so the admin view can attribute labels; nobody logs in.
            store.add_user(labeler.name, secrets.token_urlsafe(16), "labeler")
    active, submitted = list(labelers), 0
    while active:
        for labeler in list(active):
            item = store.next_item(labeler.name)
            if item is None:
                active.remove(labeler)
            elif any(not c.strip() for c in item.completions):
                store.skip(labeler.name, item.item_id, item.token, "empty completion")
            else:
                tiers = _rank_naming_item(labeler, item.conversation, item.completions, item.item_id)
                store.submit(labeler.name, item.item_id, item.token, ranks_from_tiers(tiers, len(item.completions)))
                submitted += 1
    return submitted


# --- the stage ---------------------------------------------------------------------------------


@dataclass
class SimulateConfig:
    """Rule-based preferences, ties, settable noise; for demos, tests and label-noise research, not a model of people. Writes rankings JSONL or labels a database as the app does."""

    candidates: Optional[str] = field(default=None, metadata={"help": "Candidates JSONL from `rlhf sample`. May be omitted with --db: then the items already in the database are labeled."})
    output: Optional[str] = field(default=None, metadata={"help": "Rankings JSONL to write (the labeling app's export format). Default: rankings.jsonl when --db is not given."})
    db: Optional[str] = field(default=None, metadata={"help": "Labeling database to label through, as people would (next item -> submit); candidates are added to it first."})
    preference: str = field(default="concise", metadata={"help": "What the labelers prefer: a suite rule (concise, detailed, on_topic, numeric, plain, short_sentences, line_breaks), polite, structured, no_markdown (see rlhf.labelers), a name registered with register_preference, or package.module:function."})
    num_labelers: int = field(default=3, metadata={"help": "Simulated labelers (each with its own seed, so their slips differ)."})
    labels_per_item: int = field(default=1, metadata={"help": "Distinct labelers per item (at most --num_labelers)."})
    noise: float = field(default=0.1, metadata={"help": "Probability that a labeler slips on an item: two neighbouring tiers of its ranking swap."})
    disagreement: Optional[float] = field(default=None, metadata={"help": "Instead of --noise: the share of items on which two labelers' rankings differ (sets noise = 1 - sqrt(1 - d))."})
    tie_tolerance: float = field(default=0.0, metadata={"help": "Scores this close share a tier (the built-in preferences already score in steps of 1)."})
    seed: int = field(default=0, metadata={"help": "Random seed of the labelers' slips."})

    def __post_init__(self):
        if not self.candidates and not self.db:
            raise ValueError("give --candidates (a file from `rlhf sample`) or --db (a labeling database with items)")
        problems = []
        if self.num_labelers < 1:
            problems.append(f"--num_labelers must be at least 1 (got {self.num_labelers})")
        elif not 1 <= self.labels_per_item <= self.num_labelers:
            problems.append(f"--labels_per_item must be between 1 and --num_labelers ({self.num_labelers}) "
                            f"(got {self.labels_per_item})")
        if not 0 <= self.noise <= 1:
            problems.append(f"--noise must be between 0 and 1 (got {self.noise})")
        if self.disagreement is not None and not 0 <= self.disagreement < 1:
            problems.append(f"--disagreement must be in [0, 1) (got {self.disagreement})")
        if not self.tie_tolerance >= 0:
            problems.append(f"--tie_tolerance must be >= 0 (got {self.tie_tolerance})")
        if problems:
            raise ValueError("; ".join(problems))
        get_preference(self.preference)  # a user's `module:fn` is imported and checked now, not at item 1


def run_simulate(config: SimulateConfig) -> Path | None:
    """Rank every candidate; write rankings JSONL and/or label the database. Returns the JSONL path."""
    from rlhf.data import load_candidates, write_jsonl

    config = replace(config, output=config.output or (None if config.db else "rankings.jsonl"))
    candidates = load_candidates(config.candidates) if config.candidates else None
    labelers = make_labelers(config.num_labelers, config.preference, config.noise, config.seed, config.disagreement)
    if config.db:
        from rlhf.store import LabelStore

        with LabelStore(config.db, labels_per_item=config.labels_per_item, guideline_version=GUIDELINE_VERSION,
                        seed=config.seed) as store:
            if candidates:
                store.add_items(candidates)
            print(f"[rlhf simulate] submitted {simulate_into_store(store, labelers)} labels to {config.db}")
            rows = store.rankings()
            if config.output:
                store.export_rankings(config.output)
    else:
        rows = simulate(candidates, labelers, config.labels_per_item)
        write_jsonl(config.output, rows)
        skipped = len(candidates) - len({r["item_id"] for r in rows})
        if skipped:
            print(f"[rlhf simulate] skipped {skipped} items with an empty completion (a ranking record cannot hold one)")
    print(f"[rlhf simulate] {summary(rows)}")
    if config.output:
        save_resolved_config("simulate", config, config.output)
        return Path(config.output)
    return None


def summary(rows: list[dict]) -> str:
    """One line: rankings, mean tiers per ranking, and the share of pairs that are ties."""
    if not rows:
        return "no rankings"
    tiers = sum(len(r["ranking"]) for r in rows) / len(rows)
    pairs = sum(len(r["completions"]) * (len(r["completions"]) - 1) // 2 for r in rows)
    tied = sum(len(t) * (len(t) - 1) // 2 for r in rows for t in r["ranking"])
    return f"{len(rows)} rankings, {tiers:.2f} tiers each on average, {tied / max(pairs, 1):.0%} of pairs tied"


def learnability(candidates: list[dict], preference: Union[str, Preference]) -> dict:
    """How much signal a preference gives on a set of candidates (rows with `prompt` and K
    `completions`, as `rlhf sample` writes them), scored without noise:

    - `usable_rate`: share of rows whose ranking has at least one strict preference (2+ tiers);
    - `single_tie_rate`: share of rows that are one tie (no pair for a reward model: 1 - usable_rate);
    - `strict_pair_rate`: share of all K(K-1)/2 pairs that are strict;
    - `mean_tiers`: tiers per ranking.

    A preference that ties almost everything gives a reward model nothing to learn from.
    Raises ValueError on an empty list."""
    if not candidates:
        raise ValueError("learnability needs at least one candidate row")
    fn = get_preference(preference)
    usable = pairs = strict = tiers_total = 0
    for row in candidates:
        tiers = tiers_from_scores([float(fn(row["prompt"], c)) for c in row["completions"]])
        k = len(row["completions"])
        tied = sum(len(t) * (len(t) - 1) // 2 for t in tiers)
        usable += len(tiers) > 1
        pairs += k * (k - 1) // 2
        strict += k * (k - 1) // 2 - tied
        tiers_total += len(tiers)
    n = len(candidates)
    return {"rows": n, "usable_rate": usable / n, "single_tie_rate": 1 - usable / n,
            "strict_pair_rate": strict / max(pairs, 1), "mean_tiers": tiers_total / n}
