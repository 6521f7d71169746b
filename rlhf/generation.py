"""Batched generation from chat prompts, shared by `rlhf sample`, `rlhf eval` and PPO rollouts, and
the log-probability of a generated answer (`sequence_logprobs`: eval's KL, DPO's gold view).

Prompts are message lists rendered with the model's chat template (`add_generation_prompt=True`),
LEFT-padded with the tokenizer's pad token (`<|endoftext|>` for SmolLM2, never its EOS
`<|im_end|>`: see docs/notes.md#pad-token), and decoded with the KV cache. Only the new tokens are decoded, cut
at the first stop token.

    texts = generate_completions(model, tok, [[{"role": "user", "content": "Hi"}]], num_return_sequences=4)
    gens = generate(model, tok, prompts)          # Generation(text, finished, token_ids, prompt_ids)

`finished` says whether the model ended the answer itself (a stop token) or ran out of
`max_new_tokens`: PPO and eval treat truncated answers differently.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Generation:
    """One completion: `text` (stripped, special tokens removed), `finished` (a stop token ended it),
    `token_ids` (the new tokens up to and including the stop token) and `prompt_ids` (the templated
    prompt, no padding), so a caller can re-score the exact sequence."""

    text: str
    finished: bool
    token_ids: list[int]
    prompt_ids: list[int]


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a conversation rendered for the assistant's next turn (message text stays text:
    `rlhf.tokens.encode_chat`)."""
    from rlhf.tokens import encode_chat

    return encode_chat(tokenizer, messages, add_generation_prompt=True)


def context_limit(model) -> int | None:
    """The positions a model attends over, from its config: `max_position_embeddings` (Llama,
    Qwen, Mistral...), `n_positions` (GPT-2) or `n_ctx`; None when the config names none."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompts_fit(lengths: list[int], names: list[str], max_new_tokens: int, limit: int | None,
                      source: str = "") -> None:
    """ValueError naming the prompts whose `lengths` (tokens, chat template included) plus
    `max_new_tokens` exceed the model's context `limit` (`context_limit`; None: nothing to check),
    before any is generated: past it a model with learned positions (GPT-2) fails with an
    IndexError mid-run, and a rotary one reads positions it was never trained on. `names` are the
    prompts' ids, `source` where they came from (a file)."""
    if limit is None:
        return
    over = [(name, n) for name, n in zip(names, lengths) if n + max_new_tokens > limit]
    if not over:
        return
    shown = ", ".join(f"{name!r} ({n} tokens)" for name, n in over[:5]) + (", ..." if len(over) > 5 else "")
    where = f"{source}: " if source else ""
    raise ValueError(f"{where}{len(over)} of {len(lengths)} prompts do not fit the model's context of {limit} "
                     f"positions with max_new_tokens={max_new_tokens}: {shown}. Shorten or remove them, or lower "
                     "max_new_tokens")


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends an answer: the tokenizer's EOS, the model's generation-config EOS(es), and the
    end-of-turn token the chat template writes after an answer (`rlhf.tokens.end_of_turn_ids`), which
    can be none of those (a ChatML template on a tokenizer whose EOS is `<|endoftext|>`)."""
    from rlhf.tokens import end_of_turn_ids

    ids = {tokenizer.eos_token_id, *end_of_turn_ids(tokenizer)}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    ids.discard(None)
    return sorted(ids)


# The token ids a model's saved generation config holds that generate() needs; nothing else is kept.
_TOKEN_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


@contextmanager
def own_distribution(model):
    """Inside this block `model.generate` samples the model's own distribution, shaped only by what
    the call passes (temperature, top-p, top-k), not by the sampling settings the checkpoint saved.

    transformers fills every setting a call leaves unset from the model's generation_config.json,
    and checkpoints ship some: Qwen2.5-Instruct's repetition_penalty 1.05, top_k 20. A repetition
    penalty runs before any logits processor of ours, so PPO would sample one distribution, record
    its log-probs as the old policy's, and train and take the KL on another. Here the saved config
    is swapped, for the call only, for one holding just its token ids."""
    from transformers import GenerationConfig

    target = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: the model generate() runs
    saved = getattr(target, "generation_config", None)
    if saved is None:
        yield model
        return
    target.generation_config = GenerationConfig(**{k: getattr(saved, k) for k in _TOKEN_ID_FIELDS
                                                   if getattr(saved, k, None) is not None})
    try:
        yield model
    finally:
        target.generation_config = saved


def split_at_stop(new_ids: list[int], stop_ids: list[int]) -> tuple[list[int], bool]:
    """The new tokens up to and including the first stop token, and whether there was one."""
    for i, tok in enumerate(new_ids):
        if tok in stop_ids:
            return new_ids[: i + 1], True
    return new_ids, False


def generate(
    model,
    tokenizer,
    prompts: list[list[dict]],
    num_return_sequences: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    do_sample: bool = True,
    batch_size: int = 8,
    seed: int | None = None,
    progress: bool = True,
    prompt_names: list[str] | None = None,
    source: str = "",
) -> list[list[Generation]]:
    """`num_return_sequences` generations per prompt, as `Generation`s, one list per prompt.
    ValueError naming them (`prompt_names`, default their positions; `source`) when prompts plus
    `max_new_tokens` do not fit the model's context (`check_prompts_fit`), before any generation.

    `batch_size` counts sequences per `generate` call (a prompt's copies may span two calls).
    `temperature <= 0` or `do_sample=False` decodes greedily. `top_k=0` (no top-k cut, unlike
    transformers' default of 50) samples the model's own distribution, which PPO and KL estimates
    assume. With `seed`, the same call gives the same completions."""
    import torch
    from tqdm.auto import tqdm

    from rlhf.sequences import pad

    do_sample = do_sample and temperature > 0
    stop_ids = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    encoded = [encode_prompt(tokenizer, messages) for messages in prompts]
    check_prompts_fit([len(ids) for ids in encoded], prompt_names or [f"prompt {i}" for i in range(len(prompts))],
                      max_new_tokens, context_limit(model), source)
    # One row per (prompt, copy); repeating prompts rather than passing num_return_sequences lets
    # greedy decoding return K copies too and keeps batch_size a true memory bound.
    flat = [(p, ids) for p, ids in enumerate(encoded) for _ in range(num_return_sequences)]
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k} if do_sample else {"do_sample": False}
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    out: list[list[Generation]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(flat), desc="generating", unit="seq", disable=not progress)
    try:
        for start in range(0, len(flat), batch_size):
            chunk = flat[start : start + batch_size]
            input_ids, attention_mask = pad([ids for _, ids in chunk], pad_id, side="left")
            with torch.no_grad(), own_distribution(model):
                sequences = model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                    max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad_id,
                    use_cache=True, **sampling,
                )
            new_tokens = sequences[:, input_ids.shape[1]:].tolist()  # (b, new)
            for (p, prompt_ids), ids in zip(chunk, new_tokens):
                kept, finished = split_at_stop(ids, stop_ids)
                text = tokenizer.decode(kept, skip_special_tokens=True).strip()
                out[p].append(Generation(text=text, finished=finished, token_ids=kept, prompt_ids=prompt_ids))
            bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was_training)
    return out


def generate_completions(model, tokenizer, prompts: list[list[dict]], **kwargs) -> list[list[str]]:
    """Like `generate`, but only the texts: `num_return_sequences` strings per prompt."""
    return [[g.text for g in gens] for gens in generate(model, tokenizer, prompts, **kwargs)]


def sequence_logprobs(model, gens, pad_id: int, batch_size: int = 8):
    """Sum of log p(completion token | prefix) per generation, by one forward pass per batch (the
    sequence log-probability that eval's KL and DPO's gold view take). `gens` are `Generation`s
    (prompt_ids + token_ids), right-padded with `pad_id`.  -> (n,) float32 on CPU; leaves the model
    in eval mode."""
    import torch

    out = torch.zeros(len(gens))
    device = next(model.parameters()).device
    model.eval()
    for start in range(0, len(gens), batch_size):
        chunk = gens[start:start + batch_size]
        seqs = [g.prompt_ids + g.token_ids for g in chunk]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        response_mask = torch.zeros_like(ids, dtype=torch.bool)  # True on completion tokens
        for row, (g, seq) in enumerate(zip(chunk, seqs)):
            ids[row, :len(seq)], mask[row, :len(seq)] = torch.tensor(seq), 1
            response_mask[row, len(g.prompt_ids):len(seq)] = True
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()  # (b, t-1, v)
        targets = ids[:, 1:].to(device)  # (b, t-1): token t is predicted at position t-1
        logprobs = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (b, t-1)
        out[start:start + len(chunk)] = (logprobs * response_mask[:, 1:].to(device)).sum(-1).cpu()
    return out
