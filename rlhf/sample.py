"""`rlhf sample`: K completions per prompt from a policy, the candidates people (or simulated
labelers) rank.

    rlhf sample --model runs/sft --prompts prompts.jsonl --k 4 --output candidates.jsonl
    rlhf sample --model runs/sft --k 4 --db labels.db       # straight into the labeling database

Each output row is `{"id", "prompt" (the user's text), "messages" (the prompt conversation),
"completions" (K strings), "flags", "model"}`, readable by `rlhf.data.load_candidates`.
Two identical completions waste a labeler's time and give the reward model no pair to learn from,
so duplicates are flagged (`--duplicates flag`) or drawn again (`--duplicates resample`).
Empty completions (the model stopped at once) are treated the same way and flagged `empty`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Optional
from rlhf.stages import number_problems, save_resolved_config


@dataclass
class SampleConfig:
    """Writes candidates (id, prompt, messages, K completions, flags, model) as JSONL and/or into a labeling database."""

    model: Optional[str] = field(default=None, metadata={"help": "Policy to sample from: a hub id, a model folder, a .gguf file or an `rlhf sft` output folder (adapters load on their base). Default: the embedded SmolLM2-135M-Instruct."})
    prompts: Optional[str] = field(default=None, metadata={"help": "Prompts file (JSONL/Parquet/datasets folder) with `prompt` or `messages` per row. Default: the shipped prompts_train set."})
    output: Optional[str] = field(default=None, metadata={"help": "Candidates JSONL to write. Default: candidates.jsonl when --db is not given either."})
    db: Optional[str] = field(default=None, metadata={"help": "Labeling database (SQLite file or PostgreSQL URL) to add the candidates to, as `rlhf label` reads them."})
    k: int = field(default=4, metadata={"help": "Completions per prompt (2 to 9; InstructGPT showed labelers 4 to 9)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature, >= 0; 0 decodes greedily (every completion the same)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest completion, in tokens; longer ones are cut (and usually rank low)."})
    batch_size: int = field(default=8, metadata={"help": "Sequences generated together (prompts x k are split into batches of this size)."})
    limit: Optional[int] = field(default=None, metadata={"help": "Use only the first N prompts."})
    duplicates: Literal["flag", "resample"] = field(default="flag", metadata={"help": "What to do with identical (or empty) completions of one prompt: flag the row 'duplicate', or resample them up to --resample_tries times and flag what is left."})
    resample_tries: int = field(default=3, metadata={"help": "With --duplicates resample: how many times to redraw a duplicate before flagging it."})
    seed: int = field(default=0, metadata={"help": "Random seed: the same seed, model and prompts give the same candidates."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda, cuda:1, ... Default: cuda when available."})

    def __post_init__(self):
        problems = []
        if not 2 <= self.k <= 9:
            problems.append(f"--k must be between 2 and 9 (got {self.k}): a ranking needs at least two completions, and people rank more than nine poorly")
        problems += number_problems(self, at_least_1=("max_new_tokens", "batch_size", "limit"),
                                    at_least_0=("temperature", "resample_tries"))
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if problems:
            raise ValueError("; ".join(problems))


# --- duplicates (pure) -------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Compare completions as a reader would: case and spacing do not make two answers different."""
    return " ".join(text.lower().split())


def repeated_positions(completions: list[str]) -> list[int]:
    """Positions whose text repeats an earlier completion's, or is empty (the first of each is kept)."""
    seen: set[str] = set()
    out = []
    for i, text in enumerate(completions):
        key = normalize(text)
        if not key or key in seen:
            out.append(i)
        seen.add(key)
    return out


def duplicate_flags(completions: list[str]) -> list[str]:
    flags = []
    if any(not normalize(c) for c in completions):
        flags.append("empty")
    keys = [normalize(c) for c in completions]
    if len(keys) != len(set(keys)):
        flags.append("duplicate")
    return flags


def resolve_duplicates(
    rows: list[list[str]],
    regenerate: Callable[[list[tuple[int, int]]], list[str]],
    tries: int,
) -> list[list[str]]:
    """Redraw repeated/empty completions up to `tries` rounds.

    `regenerate(requests)` takes `(row, position)` pairs and returns one new text per pair; one call
    per round batches every row's repeats together. Returns the new rows (inputs untouched)."""
    rows = [list(r) for r in rows]
    for _ in range(tries):
        requests = [(r, i) for r, row in enumerate(rows) for i in repeated_positions(row)]
        if not requests:
            break
        for (r, i), text in zip(requests, regenerate(requests)):
            rows[r][i] = text
    return rows


# --- the stage ---------------------------------------------------------------------------------


def resolve_prompts(path: Optional[str], name: str) -> str:
    """A prompts path, or the shipped file `name` when none is given."""
    if path:
        return path
    from rlhf.data import builtin

    return str(builtin(name))


def run_sample(config: SampleConfig) -> Path | None:
    """Sample, fix or flag duplicates, write candidates (and/or add them to a labeling database).
    Returns the candidates path, or None when only a database was written."""
    from rlhf.data import load_prompts, write_jsonl
    from rlhf.generation import generate
    from rlhf.adapters import load_causal_lm
    from rlhf.models import DEFAULT_MODEL, load_tokenizer

    # 1. Inputs: prompts first, so a bad file fails before a model loads.
    config = replace(config, prompts=resolve_prompts(config.prompts, "prompts_train"), model=config.model or DEFAULT_MODEL,
                     output=config.output or (None if config.db else "candidates.jsonl"))
    prompts = load_prompts(config.prompts, limit=config.limit)
    model = load_causal_lm(config.model, device=config.device)
    tokenizer = load_tokenizer(config.model)

    # 2. K completions per prompt.
    gen_kwargs = dict(max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                      do_sample=config.temperature > 0, batch_size=config.batch_size)
    gens = generate(model, tokenizer, [p.messages for p in prompts], num_return_sequences=config.k,
                    seed=config.seed, prompt_names=[p.id for p in prompts], source=str(config.prompts or ""),
                    **gen_kwargs)
    texts = [[g.text for g in row] for row in gens]

    # 3. Duplicates: redraw them (batched across prompts), then flag whatever still repeats.
    if config.duplicates == "resample":
        def regenerate(requests):
            again = generate(model, tokenizer, [prompts[r].messages for r, _ in requests], progress=False, **gen_kwargs)
            return [row[0].text for row in again]

        texts = resolve_duplicates(texts, regenerate, config.resample_tries)

    # 4. Rows, written atomically, and the resolved config next to them.
    rows = [{"id": p.id, "prompt": p.text, "messages": p.messages, "completions": completions,
             "flags": duplicate_flags(completions), "model": config.model}
            for p, completions in zip(prompts, texts)]
    report(rows)
    out = None
    if config.output:
        out = write_jsonl(config.output, rows)
        save_resolved_config("sample", config, out)
    if config.db:
        add_to_store(config.db, rows)
        if not config.output and "://" not in config.db:
            save_resolved_config("sample", config, config.db)
    return out


def add_to_store(db: str, rows: list[dict]) -> int:
    from rlhf.store import LabelStore

    with LabelStore(db) as store:
        added = store.add_items(rows)
    print(f"[rlhf sample] added {added} new items to {db} ({len(rows) - added} already there)")
    return added


def report(rows: list[dict]) -> None:
    flagged = {flag: sum(flag in r["flags"] for r in rows) for flag in ("duplicate", "empty")}
    print(f"[rlhf sample] {len(rows)} prompts x {len(rows[0]['completions'])} completions; "
          f"rows with duplicates: {flagged['duplicate']}, with empty completions: {flagged['empty']}")
