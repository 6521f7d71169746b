"""Rollouts: prompts -> completions with their log-probs (and values), cut at the first stop token,
then scored by a reward model or any Python function.

Generation uses the KV cache and reads the raw logits of every sampled step, so the log-probs of
the sampled tokens come with the sample: no second "old log-prob" forward pass (they match a full
forward within ~2e-5, docs/notes.md#generate-logprobs). They are taken step by step
(`SampledLogprobs`), so a step's (b, v) logits are dropped once read: transformers' output_logits
would keep all t of them (b·t·v floats: 200 MB for 32 rows x 32 tokens of a 49k vocabulary). With a value head on the policy, a hook on the LM head's input
collects the last hidden state of every step too, so the values come for free as well.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from rlhf.generation import encode_prompt, own_distribution
from rlhf.ppo.core import masked_fill_padding
from rlhf.sequences import cat_padded, group_prompt_cache, pad_with_shared_prefix, prefix_cache

# reward_fn(prompts, completions) -> (b,) scores. `prompts` are the last user messages' text, unless
# the function takes whole conversations (marked with rlhf.data.conversation.takes_conversations, or
# its first parameter annotated with a message type): then each is a string or a list of messages.
# A function that also names `prompt_index` (list[int]: which prompt of the step each completion
# answers, so equal indexes form a group) and/or `prompt_ids` (list[str]: the dataset id of that
# prompt), or takes **kwargs, is given them; likewise each other column of the prompts file (e.g.
# `answer`), as a list with the value of each completion's prompt (None where its row has none),
# as TRL's GRPOTrainer passes dataset columns to reward functions. A function written for TRL, whose
# `completions` is not its second parameter (`def reward(completions, answer, **kwargs)`), is called
# with keywords only, as TRL calls it.
RewardFn = Callable[..., "torch.Tensor | Sequence[float]"]


@dataclass
class Rollout:
    """One batch of experience. Shapes: b rollouts, p prompt tokens (left-padded), t response tokens
    (right-padded). Fields after `finished` are filled step by step by the trainer."""

    prompts: list  # each prompt's conversation (str = one user message, else messages), as scored
    completions: list[str]  # decoded responses, special tokens removed
    query_ids: torch.Tensor  # (b, p)
    query_mask: torch.Tensor  # (b, p)
    response_ids: torch.Tensor  # (b, t), pad after the stop token
    response_mask: torch.Tensor  # (b, t) bool, True = real token (stop token included)
    finished: torch.Tensor  # (b,) bool, a stop token ended the response
    logprobs: torch.Tensor | None = None  # (b, t) policy at sampling time ("old")
    values: torch.Tensor | None = None  # (b, t) critic at sampling time
    ref_logprobs: torch.Tensor | None = None  # (b, t)
    scores: torch.Tensor | None = None  # (b,) what PPO optimises: normalised (normalize_reward), then shaped
    raw_scores: torch.Tensor | None = None  # (b,) the reward's own units (what metrics and samples show)
    prefix_len: int = 0  # leading tokens all queries share (see encode_queries)
    prompt_index: torch.Tensor | None = None  # (b,) long: row i answers prompt prompt_index[i] of the step
    prompt_ids: list[str] | None = None  # the dataset id of each row's prompt
    prompt_columns: dict[str, list] | None = None  # each prompt column (Prompt.columns): one value per row

    @property
    def input_ids(self) -> torch.Tensor:  # (b, p + t)
        return torch.cat([self.query_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:  # (b, p + t)
        return torch.cat([self.query_mask, self.response_mask.long()], dim=1)

    def __len__(self) -> int:
        return self.query_ids.shape[0]


def select(rollout_tensors: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows `index` of every (b, ...) tensor in a dict."""
    return {k: v[index] for k, v in rollout_tensors.items()}


# --- prompts -> token ids ----------------------------------------------------------------------


def encode_queries(tokenizer, conversations: list[list[dict]], device, share_prefix: bool = False):
    """Chat-template each conversation for the assistant's turn and pad with the pad token (never
    EOS: SmolLM2's EOS <|im_end|> occurs inside templated prompts).

    With `share_prefix`, the tokens every query starts with (system prompt, turn header: ~20 of
    SmolLM2's ~39 prompt tokens) stay first, unpadded, and the padding sits between them and the
    rest, so forward passes can run that prefix once per batch (`rlhf.sequences`). Position
    ids count real tokens, so both layouts compute the same thing.
    -> input_ids (b, p), attention_mask (b, p), prefix_len"""
    ids = [encode_prompt(tokenizer, messages) for messages in conversations]
    input_ids, mask, prefix_len = pad_with_shared_prefix(ids, tokenizer.pad_token_id, share_prefix)
    return input_ids.to(device), mask.to(device), prefix_len


def truncate_after_stop(response_ids: torch.Tensor, stop_ids: Sequence[int], pad_id: int):
    """Keep each response up to and including its first stop token; pad the rest.

    (b, t) -> response_ids (b, t), response_mask (b, t) bool, finished (b,) bool"""
    is_stop = torch.isin(response_ids, torch.tensor(list(stop_ids), device=response_ids.device))
    stops_before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()  # stop tokens strictly earlier
    response_mask = stops_before == 0
    response_ids = torch.where(response_mask, response_ids, torch.full_like(response_ids, pad_id))
    return response_ids, response_mask, is_stop.any(dim=1)


# --- generation --------------------------------------------------------------------------------


def generation_config(max_new_tokens: int, temperature: float, top_p: float, pad_id: int, stop_ids: list[int]):
    """Sampling from the model's own distribution at `temperature`: no top-k (transformers'
    default cuts to 50), and, with `generate` running under `rlhf.generation.own_distribution`, no
    repetition penalty or other setting from the model's saved generation config."""
    return GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
        pad_token_id=pad_id, eos_token_id=list(stop_ids),
    )


class SampledLogprobs(LogitsProcessor):
    """Log-prob of each sampled token under softmax(raw logits / temperature), gathered one step
    later (when the token just sampled is the last column of `input_ids`) so only one step's
    (b, v) log-softmax is alive at a time. Custom processors run before transformers' own
    warpers (temperature, top-p), so `scores` here are the model's raw logits for the step.
    After generate(), `finish(sequences)` -> (b, t) float32."""

    def __init__(self, temperature: float):
        self.temperature, self.last, self.steps = temperature, None, []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._gather(input_ids[:, -1])
        self.last = F.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def _gather(self, tokens: torch.Tensor) -> None:
        if self.last is not None:
            self.steps.append(self.last.gather(-1, tokens.unsqueeze(-1)).squeeze(-1))
            self.last = None

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        self._gather(sequences[:, -1])
        return torch.stack(self.steps, dim=1)


@torch.no_grad()
def generate(model, query_ids, query_mask, gen_config, temperature: float, value_head=None, prefix_len: int = 0,
             group_size: int = 1):
    """Sample one response per query with the KV cache (started from the shared prefix's cache
    when `prefix_len` > 0). With `group_size` G > 1, rows come in groups of G identical queries
    whose prompt is prefilled once per group (`rlhf.sequences.group_prompt_cache`); transformers'
    `num_return_sequences` would copy the prompt before the prefill and run it G times.

    Returns response_ids (b, t), their log-probs (b, t) under softmax(logits / temperature), and,
    when `value_head` is given, its values on the hidden state before each token (b, t)."""
    if group_size > 1:
        cache = group_prompt_cache(model, query_ids, query_mask, prefix_len, group_size)
    else:
        cache = prefix_cache(model, query_ids, prefix_len) if prefix_len else None
    extra = {"past_key_values": cache} if cache is not None else {}
    hidden_steps: list[torch.Tensor] = []
    hook = None
    if value_head is not None:
        head = model.get_output_embeddings()
        hook = head.register_forward_hook(lambda mod, args, out: hidden_steps.append(args[0][:, -1]))
    sampled = SampledLogprobs(temperature)
    try:
        with own_distribution(model):
            sequences = model.generate(input_ids=query_ids, attention_mask=query_mask, generation_config=gen_config,
                                       logits_processor=LogitsProcessorList([sampled]), **extra)
    finally:
        if hook is not None:
            hook.remove()
    response_ids = sequences[:, query_ids.shape[1]:]  # (b, t)
    logprobs = sampled.finish(sequences)
    values = None
    if value_head is not None:
        values = value_head(torch.stack(hidden_steps[: response_ids.shape[1]], dim=1))  # (b, t)
    return response_ids, logprobs, values


def rollout(model, tokenizer, conversations: list[list[dict]], prompt_texts: list, *, gen_config,
            temperature: float, stop_ids: list[int], chunk_size: int, value_head=None,
            share_prefix: bool = True, group_size: int = 1, prompt_ids: list[str] | None = None) -> Rollout:
    """Generate `group_size` responses for each of a batch of conversations, `chunk_size` rows (a
    multiple of group_size) per generate() call. Rows [k*G, (k+1)*G) answer conversation k."""
    device = next(model.parameters()).device
    query_ids, query_mask, prefix_len = encode_queries(tokenizer, conversations, device, share_prefix)
    query_ids, query_mask = query_ids.repeat_interleave(group_size, 0), query_mask.repeat_interleave(group_size, 0)
    parts = [generate(model, query_ids[i:i + chunk_size], query_mask[i:i + chunk_size], gen_config, temperature,
                      value_head, prefix_len, group_size) for i in range(0, query_ids.shape[0], chunk_size)]
    response_ids = cat_padded([p[0] for p in parts], tokenizer.pad_token_id)
    response_ids, response_mask, finished = truncate_after_stop(response_ids, stop_ids, tokenizer.pad_token_id)
    logprobs = masked_fill_padding(cat_padded([p[1] for p in parts], 0.0), response_mask)
    values = masked_fill_padding(cat_padded([p[2] for p in parts], 0.0), response_mask) if value_head is not None else None
    completions = [text.strip() for text in tokenizer.batch_decode(response_ids, skip_special_tokens=True)]
    prompt_index = torch.arange(len(conversations), device=device).repeat_interleave(group_size)
    repeat = lambda items: [x for x in items for _ in range(group_size)]  # noqa: E731
    return Rollout(repeat(prompt_texts), completions, query_ids, query_mask, response_ids, response_mask, finished,
                   logprobs=logprobs, values=values, prefix_len=prefix_len, prompt_index=prompt_index,
                   prompt_ids=repeat(prompt_ids) if prompt_ids is not None else None)


# --- scores ------------------------------------------------------------------------------------


RESERVED_REWARD_KEYWORDS = ("prompts", "completions", "prompt_index", "prompt_ids")


def prompt_columns(prompts: list, prompt_index: list[int], names: Sequence[str] = ()) -> dict[str, list]:
    """The columns of a step's prompts (`rlhf.data.Prompt.columns`), one value per completion:
    completion i answers prompts[prompt_index[i]]; a prompt without a column gives None there.
    `names`: columns every step passes even when none of its prompts has them (the whole prompt
    set's: a JSONL file may give a column in some rows only, and a step drawing none of those rows
    must still call the reward with it, as a list of None), then those of `prompts` not among them.
    ValueError naming the column when its name is one the reward function already gets."""
    names = list(dict.fromkeys([*names, *(name for p in prompts for name in getattr(p, "columns", {}))]))
    clash = [name for name in names if name in RESERVED_REWARD_KEYWORDS]
    if clash:
        raise ValueError(f"prompt column {clash[0]!r} has the name of an argument the reward function already gets "
                         f"({', '.join(RESERVED_REWARD_KEYWORDS)}): rename that column in the prompts file")
    return {name: [prompts[i].columns.get(name) for i in prompt_index] for name in names}


def score(prompts: list, completions: list[str], reward_fn: RewardFn | None = None, reward_model=None,
          batch_size: int = 16, **info) -> torch.Tensor:
    """One score per completion from `reward_fn(prompts, completions)` or a `RewardModel`, which
    scores exactly as `rlhf eval` and the reward stage do (`RewardModel.score`: std units).
    `prompts` are conversations; the reward model scores them whole, `reward_fn` gets them as it
    declares (see RewardFn), plus the keywords of `info` (prompt_index, prompt_ids, the prompts'
    columns) it accepts.
    The one place reward_fn is called. -> (b,) float32, CPU"""
    if reward_fn is not None:
        from rlhf.data.conversation import prompts_for

        raw = call_reward_fn(reward_fn, prompts_for(reward_fn, prompts), list(completions), **info)
        return reward_fn_scores(raw, len(completions))
    return reward_model.score(prompts, completions, batch_size).float().cpu()


def reward_fn_scores(raw, n: int) -> torch.Tensor:
    """What a `reward_fn` returned, checked: one real number per completion (a list, tuple, numpy
    array or tensor of n numbers). Non-finite values pass here and stop the trainer, which knows
    the step and the last good checkpoint. TypeError or ValueError naming reward_fn otherwise.
    -> (n,) float32, CPU"""
    expected = f"reward_fn must return one finite number per completion ({n} here, e.g. a list of floats)"
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu()
    elif isinstance(raw, (str, bytes, dict)) or raw is None or not hasattr(raw, "__len__"):
        raise TypeError(f"{expected}; it returned {type(raw).__name__}: {_short(raw)}")
    try:
        scores = torch.as_tensor(raw if isinstance(raw, torch.Tensor) else list(raw), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{expected}; it returned {_short(raw)}, which is not numbers ({err})") from None
    if scores.shape != (n,):
        raise ValueError(f"{expected}; it returned shape {tuple(scores.shape)}")
    return scores.float()


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def call_reward_fn(reward_fn: RewardFn, prompts: list, completions: list[str], **info):
    """reward_fn(prompts, completions, **the keywords of `info` its signature names), or all of
    `info` when it takes **kwargs: a two-argument function keeps working unchanged. A function whose
    parameter `completions` is not its second (TRL's `def reward(completions, answer, **kwargs)`) is
    called with keywords only, as TRL calls reward functions (`prompts=`, `completions=`, the
    columns): positionally its `answer` would get the completions and the column a second value."""
    if _keyword_reward(reward_fn):
        return reward_fn(**accepted_keywords(reward_fn, {"prompts": prompts, "completions": completions, **info}))
    return reward_fn(prompts, completions, **accepted_keywords(reward_fn, info, positional=2))


def _keyword_reward(fn) -> bool:
    """Whether `fn` names a parameter `completions` that a keyword can fill and that is not its
    second positional one (TRL's reward signature)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    names = [p.name for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named = params.get("completions")
    return named is not None and named.kind in (named.POSITIONAL_OR_KEYWORD, named.KEYWORD_ONLY) and \
        names[1:2] != ["completions"]


def accepted_keywords(fn, info: dict, positional: int = 0) -> dict:
    """The entries of `info` that `fn`'s signature names, or all of them when it takes **kwargs;
    none when it has no signature (some builtins and C callables). Never one named like a parameter
    that the first `positional` positional arguments fill: a prompt column named `completion`
    must not reach `fn(prompt, completion)` a second time."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    filled = {p.name for p in list(params.values())[:positional]
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in info.items() if k not in filled}
    return {k: v for k, v in info.items() if k in params and k not in filled}


def shape_scores(scores: torch.Tensor, finished: torch.Tensor, missing_eos_penalty: float | None,
                 score_clip: float | None) -> torch.Tensor:
    """A completion cut off before its stop token gets the fixed `missing_eos_penalty` score (N+);
    then scores are clipped to +-score_clip. (b,), (b,) -> (b,)"""
    if missing_eos_penalty is not None:
        scores = torch.where(finished, scores, torch.full_like(scores, float(missing_eos_penalty)))
    if score_clip is not None:
        scores = scores.clamp(-score_clip, score_clip)
    return scores


def rollout_tensors(r: Rollout) -> dict[str, torch.Tensor]:
    """The per-row tensors of a rollout, by name, for minibatching."""
    out = {f.name: getattr(r, f.name) for f in fields(r) if isinstance(getattr(r, f.name), torch.Tensor)}
    out["input_ids"], out["attention_mask"] = r.input_ids, r.attention_mask
    return out
