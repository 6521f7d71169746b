"""`rlhf eval`: is policy A better than policy B? Win rate on held-out prompts with a bootstrap CI.

    rlhf eval --policy_a runs/ppo --policy_b runs/sft --judge reward --reward_model runs/reward \
              --reference runs/sft --best_of_n 4 --output runs/eval

Each policy answers every held-out prompt once; a judge compares the two answers:

| judge | compares by |
|---|---|
| `reward` | the reward model's scores (higher wins) — biased toward a policy trained on that model |
| `simulated` | a simulated labeler's preference (`--preference`, see `rlhf.labelers`) |
| `app` | people: writes the pairs (K=2) for `rlhf label`, then `--app_rankings` reads their labels |

In Python, any `judge(prompt, a, b) -> float` (1 a wins, 0 b wins, 0.5 tie) works with `compare`.

Reported (eval.json, eval.md): win rate of A over B, ties counted half, with a percentile bootstrap
95% CI over prompts; mean reward per policy (with a reward model); KL to `--reference` per
sequence, estimated as the mean of sum_t [log p_policy - log p_ref] over the policy's own samples
(unbiased only at temperature 1, top_p 1 — the report says when it is not); answer length and
how often answers ended by themselves; a table of sample pairs. `--best_of_n N` adds the classic
baseline: draw N answers from policy B and keep the reward model's favourite.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Optional
from rlhf.generation import sequence_logprobs  # noqa: F401 (also rlhf.eval's since it lived here)
from rlhf.stages import ConfigError, number_problems, save_resolved_config

Judge = Callable[[str, str, str], float]


@dataclass
class EvalConfig:
    """Judges: a simulated labeler, the reward model, or people through the labeling app. Also reports mean reward, KL to a reference, length, and best-of-N."""

    policy_a: Optional[str] = field(default=None, metadata={"help": "Policy under test (e.g. the PPO output folder). Default: the embedded SmolLM2-135M-Instruct."})
    policy_b: Optional[str] = field(default=None, metadata={"help": "Baseline policy (e.g. the SFT output folder). Default: the embedded SmolLM2-135M-Instruct."})
    prompts: Optional[str] = field(default=None, metadata={"help": "Held-out prompts file. Default: the shipped prompts_heldout set."})
    judge: Literal["simulated", "reward", "app"] = field(default="simulated", metadata={"help": "Who compares the answers: simulated (a rule-based labeler), reward (the reward model) or app (people, through `rlhf label` in pairwise mode)."})
    reward_model: Optional[str] = field(default=None, metadata={"help": "Reward model folder (`rlhf reward` output): the reward judge, mean rewards, and best-of-N."})
    preference: str = field(default="concise", metadata={"help": "The simulated judge's preference (see `rlhf simulate --help`)."})
    judge_noise: float = field(default=0.0, metadata={"help": "Slip rate of the simulated judge (0: it always follows its preference)."})
    extra_policies: list[str] = field(default_factory=list, metadata={"help": "More policies to compare with policy B the same way (e.g. a DPO output)."})
    limit: Optional[int] = field(default=None, metadata={"help": "Use only the first N prompts."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer, in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature, >= 0 (1 keeps the KL estimate unbiased; 0 = greedy)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling (1 keeps the KL estimate unbiased)."})
    batch_size: int = field(default=8, metadata={"help": "Sequences per generation / scoring batch."})
    best_of_n: Optional[int] = field(default=None, metadata={"help": "Also evaluate best-of-N sampling from policy B, picked by the reward model (needs --reward_model)."})
    reference: Optional[str] = field(default=None, metadata={"help": "Reference policy for the KL (usually the SFT policy); omitted: no KL."})
    bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for the confidence interval."})
    samples_in_report: int = field(default=8, metadata={"help": "Sample pairs shown in eval.md."})
    app_rankings: Optional[str] = field(default=None, metadata={"help": "With --judge app: the rankings people gave to the pairs file (`rlhf export --rankings`); computes the win rate from them."})
    output: str = field(default="eval", metadata={"help": "Folder for eval.json and eval.md (and the pairs file of the app judge)."})
    seed: int = field(default=0, metadata={"help": "Random seed (policy A samples with it, policy B with seed + 1)."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda, ... Default: cuda when available."})

    def __post_init__(self):
        problems = []
        if self.best_of_n is not None and self.best_of_n < 2:
            problems.append(f"--best_of_n must be at least 2 (got {self.best_of_n})")
        if self.bootstrap < 100:
            problems.append(f"--bootstrap needs at least 100 resamples for a 95% interval (got {self.bootstrap})")
        problems += number_problems(self, at_least_1=("max_new_tokens", "batch_size", "limit"),
                                    at_least_0=("temperature", "samples_in_report"), probability=("judge_noise",))
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if problems:
            raise ValueError("; ".join(problems))
        if self.judge == "simulated":
            from rlhf.labelers import get_preference

            get_preference(self.preference)  # a user's `module:fn` is imported and checked now


# --- statistics (pure) -------------------------------------------------------------------------


def win_rate(outcomes: list[float]) -> float:
    """Mean outcome: 1 per win, 0.5 per tie, 0 per loss."""
    if not len(outcomes):
        raise ValueError("no outcomes")
    return float(sum(outcomes) / len(outcomes))


def bootstrap_ci(outcomes: list[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample prompts with replacement `n` times."""
    import numpy as np

    values = np.asarray(outcomes, dtype=float)  # (m,)
    if values.size == 0:
        raise ValueError("no outcomes")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)  # (n,)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def outcomes_from_scores(scores_a: list[float], scores_b: list[float], tie: float = 1e-6) -> list[float]:
    """Pairwise outcomes from scores: 1 a higher, 0 b higher, 0.5 within `tie`."""
    return [0.5 if abs(a - b) <= tie else float(a > b) for a, b in zip(scores_a, scores_b)]


def summarize(outcomes: list[float], bootstrap: int = 1000, seed: int = 0) -> dict:
    lo, hi = bootstrap_ci(outcomes, bootstrap, seed)
    return {"win_rate": win_rate(outcomes), "ci95": [lo, hi], "n": len(outcomes),
            "wins": sum(o == 1 for o in outcomes), "ties": sum(o == 0.5 for o in outcomes),
            "losses": sum(o == 0 for o in outcomes)}


def compare(prompts: list, a: list[str], b: list[str], judge: Judge, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Judge every pair (any `judge(prompt, a, b) -> float`, or an object with `.judge`) and
    summarize: win rate, CI, wins / ties / losses, and the per-prompt `outcomes`. `prompts` are
    conversations; a judge gets the last user message's text unless it takes conversations
    (rlhf.data.conversation.wants_conversations)."""
    from rlhf.data.conversation import prompts_for

    fn = getattr(judge, "judge", judge)
    outcomes = [float(fn(p, x, y)) for p, x, y in zip(prompts_for(fn, prompts), a, b)]
    return {**summarize(outcomes, bootstrap, seed), "outcomes": outcomes}


def md_cell(text: str, limit: int = 400) -> str:
    """Model text as a literal Markdown table cell: no HTML, no formatting, no broken columns."""
    text = text if len(text) <= limit else text[:limit] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]#|~":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\r", "").replace("\n", "<br>") or "(empty)"


# --- model work --------------------------------------------------------------------------------


@dataclass
class PolicySamples:
    name: str
    gens: list            # one Generation per prompt
    logprobs: object      # (n,) tensor of sum log p under the policy itself, or None
    best_of: list | None  # best_of_n Generations per prompt, or None
    kl: float | None = None
    rewards: list | None = None
    best_rewards: list | None = None  # the reward of the best-of-N pick per prompt


def sample_policy(name: Optional[str], prompts, config: EvalConfig, seed: int, best_of_n: int | None = None) -> PolicySamples:
    """Load a policy, answer every prompt once (plus `best_of_n` more each), score its own samples
    for the KL, and free it."""
    from rlhf.generation import generate
    from rlhf.adapters import load_causal_lm
    from rlhf.models import DEFAULT_MODEL, load_tokenizer

    model, tokenizer = load_causal_lm(name, device=config.device), load_tokenizer(name)
    kwargs = dict(max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                  batch_size=config.batch_size)
    messages = [p.messages for p in prompts]
    gens = [row[0] for row in generate(model, tokenizer, messages, seed=seed, prompt_names=[p.id for p in prompts],
                                       source=str(config.prompts or ""), **kwargs)]
    logprobs = sequence_logprobs(model, gens, tokenizer.pad_token_id, config.batch_size) if config.reference else None
    best_of = generate(model, tokenizer, messages, num_return_sequences=best_of_n, seed=seed + 1000, **kwargs) if best_of_n else None
    del model
    return PolicySamples(name or DEFAULT_MODEL, gens, logprobs, best_of)


def add_kl(reference: str, policies: list[PolicySamples], config: EvalConfig) -> None:
    """Mean per-sequence KL(policy || reference) on each policy's own samples."""
    from rlhf.adapters import load_causal_lm
    from rlhf.models import load_tokenizer

    model, tokenizer = load_causal_lm(reference, device=config.device), load_tokenizer(reference)
    for p in policies:
        ref = sequence_logprobs(model, p.gens, tokenizer.pad_token_id, config.batch_size)
        p.kl = float((p.logprobs - ref).mean())
    del model


# --- the stage ---------------------------------------------------------------------------------


def run_eval(config: EvalConfig) -> dict:
    """Sample both policies, judge, and write eval.json + eval.md into `config.output`."""
    from rlhf.data import load_prompts
    from rlhf.outputs import check_output_dir
    from rlhf.sample import resolve_prompts

    # 1. Inputs, checked before any model loads.
    check_output_dir("eval", config.output, {"--policy_a": config.policy_a, "--policy_b": config.policy_b,
                                              "--reward_model": config.reward_model, "--reference": config.reference,
                                              "--extra_policies": config.extra_policies}, output_flag="--output")
    config = replace(config, prompts=resolve_prompts(config.prompts, "prompts_heldout"))
    if (config.judge == "reward" or config.best_of_n) and not config.reward_model:
        raise ConfigError("--judge reward and --best_of_n need --reward_model")
    from_app = config.judge == "app" and config.app_rankings
    prompts = None if from_app else load_prompts(config.prompts, limit=config.limit)
    out = Path(config.output)  # written only once the inputs are read: a refused file leaves nothing
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config("eval", config, out)
    if from_app:
        return app_results(config, out)
    texts = [p.conversation for p in prompts]  # the whole context: what the judge and reward model see

    # 2. Answers: A with `seed`, B with `seed + 1` (so A vs itself is a fair coin, not all ties).
    a = sample_policy(config.policy_a, prompts, config, config.seed)
    b = sample_policy(config.policy_b, prompts, config, config.seed + 1, best_of_n=config.best_of_n)
    extras = [sample_policy(name, prompts, config, config.seed + 2 + i) for i, name in enumerate(config.extra_policies)]
    if config.reference:
        add_kl(config.reference, [a, b, *extras], config)

    # 3. Rewards (when a reward model is given) and best-of-N from B.
    best = score_with_reward_model(config, texts, [a, b, *extras]) if config.reward_model else None

    # 4. Judge.
    if config.judge == "app":
        return app_handoff(config, out, prompts, a, b)
    judge = make_judge(config, texts, [a, b, *extras], best)
    results = {"policy_a": a.name, "policy_b": b.name, "judge": judge_name(config), "prompts": config.prompts,
               **compare_policies(config, judge, texts, a, b, extras, best)}
    write_report(out, config, results, prompts, a, b)
    return results


def judge_name(config: EvalConfig) -> str:
    if config.judge == "reward":
        return f"reward model {config.reward_model}"
    return f"simulated labeler ({config.preference}, noise {config.judge_noise})"


def make_judge(config: EvalConfig, texts, policies: list[PolicySamples], best: list[str] | None) -> Judge:
    if config.judge == "simulated":
        from rlhf.labelers import SimulatedLabeler

        return SimulatedLabeler(config.preference, noise=config.judge_noise, seed=config.seed, name="judge")
    from rlhf.data.conversation import prompt_key, takes_conversations

    # The reward judge compares scores already computed for every answer: look them up by text.
    table = {(prompt_key(prompt), g.text): r for p in policies for prompt, g, r in zip(texts, p.gens, p.rewards)}
    if best is not None:
        table.update({(prompt_key(prompt), text): r for prompt, text, r in zip(texts, best, policies[1].best_rewards)})

    @takes_conversations
    def reward_judge(prompt, x: str, y: str) -> float:
        key = prompt_key(prompt)
        return outcomes_from_scores([table[(key, x)]], [table[(key, y)]])[0]

    return reward_judge


def score_with_reward_model(config: EvalConfig, texts, policies: list[PolicySamples]) -> list[str] | None:
    """Fill each policy's `rewards` (`RewardModel.score`: std units, the scale PPO trains on); return
    best-of-N texts from the B samples when asked for."""
    from rlhf.reward import RewardModel

    rm = RewardModel.load(config.reward_model, device=config.device)
    for p in policies:
        p.rewards = rm.score(texts, [g.text for g in p.gens], batch_size=config.batch_size).tolist()
    b = policies[1]
    if not b.best_of:
        return None
    n = len(b.best_of[0])
    flat = rm.score([t for t in texts for _ in range(n)], [g.text for row in b.best_of for g in row],
                    batch_size=config.batch_size).view(len(texts), n)  # (prompts, n)
    picks = flat.argmax(-1).tolist()
    b.best_rewards = flat.max(-1).values.tolist()
    return [row[i].text for row, i in zip(b.best_of, picks)]


def policy_stats(p: PolicySamples) -> dict:
    words = [len(g.text.split()) for g in p.gens]
    stats = {"name": p.name, "mean_words": sum(words) / len(words),
             "mean_tokens": sum(len(g.token_ids) for g in p.gens) / len(p.gens),
             "finished_rate": sum(g.finished for g in p.gens) / len(p.gens)}
    if p.rewards is not None:
        stats["mean_reward_std_units"] = sum(p.rewards) / len(p.rewards)
    if p.kl is not None:
        stats["kl_to_reference"] = p.kl
    return stats


def compare_policies(config, judge, texts, a, b, extras, best) -> dict:
    """Win rates (A vs B, each extra vs B, best-of-N vs B and A vs best-of-N) and per-policy stats."""
    b_texts = [g.text for g in b.gens]
    main = compare(texts, [g.text for g in a.gens], b_texts, judge, config.bootstrap, config.seed)
    results = {k: v for k, v in main.items() if k != "outcomes"}
    results["outcomes"] = main["outcomes"]
    results["policies"] = {"a": policy_stats(a), "b": policy_stats(b)}
    results["comparisons"] = [{"a": a.name, "b": b.name, **{k: v for k, v in main.items() if k != "outcomes"}}]
    for p in extras:
        res = compare(texts, [g.text for g in p.gens], b_texts, judge, config.bootstrap, config.seed)
        results["policies"][p.name] = policy_stats(p)
        results["comparisons"].append({"a": p.name, "b": b.name, **{k: v for k, v in res.items() if k != "outcomes"}})
    if best is not None:
        name = f"best-of-{config.best_of_n}({b.name})"
        results["best_of_n"] = {"n": config.best_of_n,
                                "mean_reward_std_units": sum(b.best_rewards) / len(b.best_rewards)}
        for x_name, x, y_name, y in ((name, best, b.name, b_texts), (a.name, [g.text for g in a.gens], name, best)):
            res = compare(texts, x, y, judge, config.bootstrap, config.seed)
            results["comparisons"].append({"a": x_name, "b": y_name, **{k: v for k, v in res.items() if k != "outcomes"}})
    if config.reference and (config.temperature != 1 or config.top_p != 1):
        results["kl_note"] = "sampled at temperature/top_p != 1: the KL figures are biased estimates"
    return results


def write_report(out: Path, config: EvalConfig, results: dict, prompts, a: PolicySamples, b: PolicySamples) -> None:
    results["samples"] = [{"prompt": p.text, "a": x.text, "b": y.text, "outcome": o}
                          for p, x, y, o in zip(prompts, a.gens, b.gens, results["outcomes"])]
    (out / "eval.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "eval.md").write_text(markdown_report(results, config.samples_in_report), encoding="utf-8")
    lo, hi = results["ci95"]
    print(f"[rlhf eval] win rate of {a.name} over {b.name}: {results['win_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}, "
          f"{results['n']} prompts, judge: {results['judge']}); report: {out / 'eval.md'}")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_report(results: dict, samples: int) -> str:
    lo, hi = results["ci95"]
    lines = [f"## Evaluation: `{md_cell(results['policy_a'])}` (A) vs `{md_cell(results['policy_b'])}` (B)", "",
             f"Win rate of A over B: **{results['win_rate']:.3f}** (95% bootstrap CI {lo:.3f}–{hi:.3f}; "
             f"{results['wins']} wins, {results['ties']} ties, {results['losses']} losses over {results['n']} held-out prompts; "
             f"judge: {md_cell(results['judge'])}). Ties count half.", ""]
    policies = results["policies"]
    keys = [("mean_reward_std_units", "mean reward (reward-model std units)"), ("kl_to_reference", "KL to reference (nats/sequence)"),
            ("mean_words", "mean length (words)"), ("mean_tokens", "mean length (tokens)"),
            ("finished_rate", "ended by itself (not cut off)")]
    lines += ["| | " + " | ".join(md_cell(p["name"]) for p in policies.values()) + " |",
              "|---|" + "---|" * len(policies)]
    for key, label in keys:
        lines.append(f"| {label} | " + " | ".join(_fmt(p.get(key)) for p in policies.values()) + " |")
    lines += ["", "| comparison | win rate | 95% CI | wins / ties / losses |", "|---|---|---|---|"]
    for c in results["comparisons"]:
        lines.append(f"| {md_cell(c['a'])} vs {md_cell(c['b'])} | {c['win_rate']:.3f} | {c['ci95'][0]:.3f}–{c['ci95'][1]:.3f} "
                     f"| {c['wins']} / {c['ties']} / {c['losses']} |")
    if "kl_note" in results:
        lines += ["", f"Note: {results['kl_note']}."]
    lines += ["", "### Sample pairs", "", "| prompt | A | B | judged |", "|---|---|---|---|"]
    verdict = {1.0: "A", 0.0: "B", 0.5: "tie"}
    for s in results["samples"][:samples]:
        lines.append(f"| {md_cell(s['prompt'], 200)} | {md_cell(s['a'])} | {md_cell(s['b'])} | {verdict.get(s['outcome'], s['outcome'])} |")
    return "\n".join(lines) + "\n"


# --- people as the judge: a hand-off through the labeling app ----------------------------------

PAIRS_FILE, KEY_FILE = "pairs_for_labeling.jsonl", "pairs_key.json"


def app_handoff(config: EvalConfig, out: Path, prompts, a: PolicySamples, b: PolicySamples) -> dict:
    """Write the answer pairs, each in a random order, as K=2 candidates for `rlhf label`, and
    the key saying which side is A (kept out of the candidates so labelers cannot see it)."""
    from rlhf.data import write_jsonl

    rng = random.Random(config.seed)
    rows, key = [], {}
    for n, (p, x, y) in enumerate(zip(prompts, a.gens, b.gens)):
        a_first = rng.random() < 0.5
        item_id = f"eval-{n}-{p.id}"
        key[item_id] = 0 if a_first else 1
        rows.append({"id": item_id, "prompt": p.text, "messages": p.messages, "flags": [], "model": "eval",
                     "completions": [x.text, y.text] if a_first else [y.text, x.text]})
    write_jsonl(out / PAIRS_FILE, rows)
    (out / KEY_FILE).write_text(json.dumps({"policy_a": a.name, "policy_b": b.name, "a_index": key}, indent=2), encoding="utf-8")
    steps = (f"rlhf label --candidates {out / PAIRS_FILE} --db {out / 'eval_labels.db'}   # people pick the better answer (ties allowed)\n"
             f"rlhf export --db {out / 'eval_labels.db'} --rankings {out / 'app_rankings.jsonl'}\n"
             f"rlhf eval --judge app --app_rankings {out / 'app_rankings.jsonl'} --output {out}")
    print(f"[rlhf eval] wrote {len(rows)} pairs for people to judge. Next:\n{steps}")
    return {"judge": "app", "pairs": str(out / PAIRS_FILE), "key": str(out / KEY_FILE), "next_steps": steps}


def app_results(config: EvalConfig, out: Path) -> dict:
    """Win rate from people's labels of the pairs: one outcome per item (the mean over its labels)."""
    from rlhf.data import DataError, load_preferences

    key_path = out / KEY_FILE
    if not key_path.exists():
        raise DataError(key_path, None, None, "missing: run `rlhf eval --judge app` first to write the pairs and their key")
    key = json.loads(key_path.read_text())
    rankings, _ = load_preferences(config.app_rankings)
    per_item: dict[str, list[float]] = {}
    for r in rankings:
        if r.item_id in key["a_index"]:
            a_tier = next(t for t, tier in enumerate(r.ranking) if key["a_index"][r.item_id] in tier)
            per_item.setdefault(r.item_id, []).append(0.5 if len(r.ranking) == 1 else float(a_tier == 0))
    if not per_item:
        raise DataError(config.app_rankings, None, "item_id", f"no ranking refers to a pair in {key_path}")
    outcomes = [sum(v) / len(v) for v in per_item.values()]
    results = {"policy_a": key["policy_a"], "policy_b": key["policy_b"], "judge": "people (labeling app)",
               **summarize(outcomes, config.bootstrap, config.seed), "labels": sum(map(len, per_item.values()))}
    (out / "eval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lo, hi = results["ci95"]
    (out / "eval.md").write_text(
        f"## Evaluation by people: `{md_cell(key['policy_a'])}` (A) vs `{md_cell(key['policy_b'])}` (B)\n\n"
        f"Win rate of A: **{results['win_rate']:.3f}** (95% bootstrap CI {lo:.3f}–{hi:.3f}; {results['n']} pairs, "
        f"{results['labels']} labels; ties and split votes count half).\n", encoding="utf-8")
    print(f"[rlhf eval] people's win rate of A: {results['win_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}, {results['n']} pairs)")
    return results
