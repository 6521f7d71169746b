"""Token sequences as padded batches, and one forward pass over them: the single owner of padding,
position ids and the shared-prefix cache, for the policy, the reference, the critic and the reward
model alike.

    input_ids, attention_mask = pad([[5, 6, 7], [8]], pad_id=0, side="left")
    input_ids, attention_mask, prefix_len = pad_with_shared_prefix(rows, pad_id)
    out = forward(model, input_ids, attention_mask, prefix_len)   # outputs from prefix_len on
    input_ids, attention_mask, prompt_len, prefix_len, sizes = pad_shared_prompts(rows, group_sizes, pad_id)
    out = forward(model, input_ids, attention_mask, prefix_len, prompt_len=prompt_len, group_sizes=sizes)

Position ids count real tokens only, as generate() makes them, so left padding, right padding and
padding between a shared prefix and the rest of a row all compute the same thing.
"""

from __future__ import annotations

import torch

MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth a second forward call


def pad(ids: list[list[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> input_ids (b, t) and attention_mask (b, t), 1 = real token. Left padding puts
    every row's last real token at the last position, where generation continues and scores are read."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        span = slice(width - len(x), width) if side == "left" else slice(0, len(x))
        input_ids[row, span] = torch.tensor(x, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def pad_with_shared_prefix(ids: list[list[int]], pad_id: int, share_prefix: bool = True):
    """Token lists -> (b, s) ids and mask: [common prefix][left padding][rest of the row], or plain
    left padding when the rows share fewer than MIN_SHARED_PREFIX leading tokens. Either way each
    row's last real token sits at the last position.
    -> input_ids (b, s), attention_mask (b, s), prefix_len"""
    prefix_len = _common_prefix(ids) if share_prefix and len(ids) > 1 else 0
    prefix_len = min(prefix_len, min(len(x) for x in ids) - 1)  # every row keeps a token after it
    if prefix_len < MIN_SHARED_PREFIX:
        prefix_len = 0
    rest, rest_mask = pad([x[prefix_len:] for x in ids], pad_id, side="left")
    prefix = torch.tensor(ids[0][:prefix_len], dtype=torch.long).expand(len(ids), -1)
    return torch.cat([prefix, rest], dim=1), torch.cat([torch.ones_like(prefix), rest_mask], dim=1), prefix_len


def pad_shared_prompts(ids: list[list[int]], group_sizes: list[int], pad_id: int):
    """Rows in groups (the K completions of a ranking, each with its whole conversation; rows of a
    group consecutive, `group_sizes[g]` of them) -> (n, p + s) ids and mask laid out as
    [the tokens the group's rows start with, right-padded to p][the rest of the row, right-padded].
    Columns [0, p) are then identical within a group, and `forward(..., prompt_len=p, group_sizes=)`
    runs them once per group; columns [0, prefix_len) are identical in every row (the chat template's
    system prompt and turn header) and run once per batch. Each row keeps at least one token after
    its group's part, where its score is read.

    The shared part is found from the ids themselves, so prompts cut differently to fit a length
    limit share only what is really the same; a group whose rows differ from their first token on
    is split into groups of one (nothing shared, nothing lost). When no group of two remains, the
    layout is plain right padding (p = 0): the same numbers, nothing run once.
    -> input_ids (n, p + s), attention_mask (n, p + s), prompt_len p, prefix_len, group sizes used"""
    if sum(group_sizes) != len(ids):
        raise ValueError(f"group sizes {group_sizes} add up to {sum(group_sizes)}, not the {len(ids)} rows")
    groups, start = [], 0
    for k in group_sizes:
        rows, start = ids[start:start + k], start + k
        shares = k > 1 and min(_common_prefix(rows), min(len(r) for r in rows) - 1) > 0
        groups += [rows] if shares or k < 2 else [[r] for r in rows]
    shared = [min(_common_prefix(rows), min(len(r) for r in rows) - 1) for rows in groups]
    widest = max((n for n, rows in zip(shared, groups) if len(rows) > 1), default=0)
    shared = [min(n, widest) for n in shared]  # a group of one: as wide as the widest shared part
    sizes = [len(rows) for rows in groups]
    if widest == 0 or min(shared) < 1:
        return *pad(ids, pad_id, side="right"), 0, 0, list(group_sizes)
    heads = [rows[0][:n] for rows, n in zip(groups, shared)]
    head_ids, head_mask = pad(heads, pad_id, side="right")  # (g, p)
    rest_ids, rest_mask = pad([r[n:] for rows, n in zip(groups, shared) for r in rows], pad_id, side="right")
    repeats = torch.tensor(sizes)
    input_ids = torch.cat([head_ids.repeat_interleave(repeats, dim=0), rest_ids], dim=1)
    attention_mask = torch.cat([head_mask.repeat_interleave(repeats, dim=0), rest_mask], dim=1)
    prefix_len = min(_common_prefix(heads), min(shared) - 1) if len(heads) > 1 else 0
    return input_ids, attention_mask, head_ids.shape[1], prefix_len if prefix_len >= MIN_SHARED_PREFIX else 0, sizes


def _common_prefix(rows: list[list[int]]) -> int:
    n = min(len(r) for r in rows)
    for i in range(n):
        if any(r[i] != rows[0][i] for r in rows):
            return i
    return n


def cat_padded(tensors: list[torch.Tensor], value) -> torch.Tensor:
    """Concatenate (b_i, t_i) tensors along the batch, right-padding each to the longest t with `value`."""
    width = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value) for t in tensors], dim=0)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only, as generate() makes them: padding anywhere in a
    row (left, right, or between a shared prefix and the rest) does not shift them. (b, s) -> (b, s)"""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def prefix_cache(model, input_ids: torch.Tensor, prefix_len: int):
    """KV cache of the first `prefix_len` tokens, which every row shares (the chat template's system
    prompt and turn header): computed once on row 0, then repeated for each row. Gradients flow
    through the repeat, so a training forward may use it too."""
    out = model(input_ids=input_ids[:1, :prefix_len], use_cache=True, **_one_logit(model))
    cache = out.past_key_values
    cache.batch_repeat_interleave(input_ids.shape[0])
    return cache


def _one_logit(model) -> dict:
    # A causal LM would also compute the vocabulary logits of the prefix; one position is enough.
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {"logits_to_keep": 1} if head is not None else {}


def group_prompt_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_len: int,
                       group_size: int):
    """KV cache of every prompt token but the last, computed once per group and repeated for its
    G rows: the G completions of a prompt (rows [k*G, (k+1)*G), identical) share one prefill.
    generate() then runs only the last prompt token per row before sampling. (b, p) -> cache"""
    ids, mask = input_ids[::group_size, :-1], attention_mask[::group_size, :-1]
    if ids.shape[1] <= prefix_len:  # nothing past the shared prefix to cache
        return prefix_cache(model, input_ids, prefix_len) if prefix_len else None
    cache = forward(model, ids, mask, prefix_len, use_cache=True, **_one_logit(model)).past_key_values
    cache.batch_repeat_interleave(group_size)
    return cache


def shared_prompt_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                        group_sizes, prefix_len: int = 0):
    """KV cache of the first `prompt_len` columns, computed once per group (on its first row, the
    batch-wide `prefix_len` once for all) and gathered to every row of the group: the layout of
    `pad_shared_prompts`. The gather is an index, so gradients flow back to the one prompt forward
    from every completion's loss. (n, t) -> cache of (n, prompt_len) positions"""
    sizes = torch.as_tensor(list(group_sizes), device=input_ids.device)
    first = torch.cumsum(sizes, 0) - sizes  # (g,) first row of each group
    cache = forward(model, input_ids[first, :prompt_len], attention_mask[first, :prompt_len], prefix_len,
                    use_cache=True, **_one_logit(model)).past_key_values
    cache.batch_select_indices(torch.repeat_interleave(torch.arange(len(sizes), device=sizes.device), sizes))
    return cache


def forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_len: int = 0,
            use_cache: bool | None = None, prompt_len: int = 0, group_sizes=None, **kwargs):
    """model(...) on (b, s) ids with position ids over real tokens, running a shared prefix once
    when `prefix_len` > 0, and each group's shared prompt once when `prompt_len` > 0 (the layout of
    `pad_shared_prompts`, `group_sizes` rows per group). The outputs cover positions from
    `prompt_len or prefix_len` on. `model` is a causal LM or a bare transformer (e.g. a reward
    model's backbone). The cache is kept when a part ran once (or `use_cache`)."""
    positions = position_ids(attention_mask)
    if prompt_len:
        kwargs["past_key_values"] = shared_prompt_cache(model, input_ids, attention_mask, prompt_len, group_sizes,
                                                        prefix_len)
        input_ids, positions = input_ids[:, prompt_len:], positions[:, prompt_len:]
        prefix_len = prompt_len  # for use_cache below
    elif prefix_len:
        kwargs["past_key_values"] = prefix_cache(model, input_ids, prefix_len)
        input_ids, positions = input_ids[:, prefix_len:], positions[:, prefix_len:]
    return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                 use_cache=bool(prefix_len) if use_cache is None else use_cache, **kwargs)
