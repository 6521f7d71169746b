"""The trainers' second line of defence against NaN and inf (the readers are the first).

A NaN loss makes NaN gradients, one optimizer step with them makes every weight NaN, and a run that
goes on to save writes a model that scores everything NaN. So every trainer (SFT, reward, DPO, PPO)
stops with `NonFiniteError` before an optimizer step whose loss or gradients are not finite, naming
the step, and checks the weights once more before it writes them: a poisoned run leaves the output
folder as it was (a previous good model stays, untouched).

transformers' Trainer (under TRL's SFTTrainer and DPOTrainer) does not stop on a NaN loss: with
`logging_nan_inf_filter` (on by default) it only hides it from the logged loss and steps on.
`finite_gradients_callback` closes that gap.
"""

from __future__ import annotations

import math


class NonFiniteError(RuntimeError):
    """A NaN or inf in a loss, gradient, reward or weight: the run stopped before it reached the
    weights or the output folder. The CLI prints it in one line and exits 1."""


def first_nonfinite_parameter(named_tensors) -> str | None:
    """Name of the first tensor in `(name, tensor)` pairs holding NaN or inf, else None."""
    import torch

    for name, tensor in named_tensors:
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite_weights(model, stage: str, out) -> None:
    """Raise `NonFiniteError` if any parameter of `model` holds NaN or inf; call it just before a
    stage saves, so such weights are never written over `out`."""
    bad = first_nonfinite_parameter(model.named_parameters())
    if bad:
        raise NonFiniteError(f"{stage}: parameter {bad} is not finite (NaN or inf) after training; nothing was "
                             f"saved to {out}")


def check_finite_step(stage: str, step: int, loss: float, grad_norm: float, kept: str) -> None:
    """Raise `NonFiniteError` when a step's loss or gradient norm is NaN or inf, before the optimizer
    step. `step` is 1-based; `kept` says what stays on disk (e.g. the last checkpoint)."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    value = loss if not math.isfinite(loss) else grad_norm
    raise NonFiniteError(f"{stage} step {step}: the {what} is {value} (not finite); the run stopped before the "
                         f"optimizer step, so no weight took it; {kept}")


def finite_gradients_callback(stage: str, out):
    """A transformers `TrainerCallback` that raises `NonFiniteError` before the optimizer step of a
    step whose gradients hold NaN or inf (what a NaN or inf loss gives), naming the step and what
    stays on disk. Each process sees the same all-reduced gradients, so all of them stop."""
    from transformers import TrainerCallback

    class FiniteGradients(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            grads = ((name, p.grad) for name, p in model.named_parameters() if p.requires_grad)
            bad = first_nonfinite_parameter(grads)
            if bad is None:
                return control
            from pathlib import Path

            from transformers.trainer_utils import get_last_checkpoint

            folder = Path(args.output_dir)
            last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
            kept = (f"the last checkpoint {last} is kept (--resume continues from it)" if last else
                    "no checkpoint had been written yet")
            raise NonFiniteError(f"{stage} step {state.global_step + 1}: the gradient of {bad} is not finite (the "
                                 f"loss was NaN or inf); the run stopped before the optimizer step, nothing was saved "
                                 f"to {out}, and {kept}")

    return FiniteGradients()
