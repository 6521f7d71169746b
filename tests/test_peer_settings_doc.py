"""docs/peer_settings.md names only settings `rlhf ppo` has.

In the table's `ours` column every `backticked` word is either a PPOConfig field or a value of the
field named last before it in the same cell; a value followed by "(default" is that field's
default. Each field must be a dataclass field of PPOConfig, each value must fit the field's type and
be accepted by PPOConfig (a group estimator is built with num_generations=4), each claimed default
must be the real one, and every advantage estimator, KL estimator and loss aggregation of ours must
be named. A renamed or removed field therefore fails here until the doc is updated.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest

from rlhf.ppo import core
from rlhf.ppo.config import PPOConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "peer_settings.md"
FIELDS = {f.name: f for f in dataclasses.fields(PPOConfig)}
HINTS = typing.get_type_hints(PPOConfig)
TOKEN = re.compile(r"`([^`]+)`(\s*\(default)?")


def ours_cells(text: str) -> list[tuple[str, str]]:
    """(setting, ours cell) of each row of the table whose header has an `ours...` column."""
    rows = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if not rows:
        raise AssertionError("no table in the doc")
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    column = next((i for i, cell in enumerate(header) if cell.lower().startswith("ours")), None)
    if column is None:
        raise AssertionError(f"no `ours` column in the table header {header}")
    cells = []
    for row in rows[1:]:
        parts = [cell.strip() for cell in row.strip("|").split("|")]
        if set("".join(parts)) <= set("-: "):
            continue  # the separator row
        if len(parts) != len(header):
            raise AssertionError(f"row has {len(parts)} cells, the header {len(header)}: {row}")
        cells.append((parts[0], parts[column]))
    return cells


def parse_value(text: str):
    """`0.05` -> 0.05, `None` -> None, `True` -> True; anything else (`gae`, `k3`) stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def claims(text: str) -> list[tuple[str, str, object, bool]]:
    """(setting, field, value or NO_VALUE, claimed to be the default) for each backticked word of
    the ours column. A word naming no field, with no field before it in its cell, is returned as a
    field so that the field check fails on it."""
    found = []
    for setting, cell in ours_cells(text):
        field = None
        for match in TOKEN.finditer(cell):
            word, is_default = match.group(1), bool(match.group(2))
            if word in FIELDS or field is None:
                field = word
                found.append((setting, field, NO_VALUE, False))
            else:
                found.append((setting, field, parse_value(word), is_default))
    return found


NO_VALUE = object()


def fits(value, hint) -> bool:
    """Whether `value` is of the annotated type (Literal, Optional, bool, int, float, str, list)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return value in args
    if origin is typing.Union:
        return any(fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list)
    raise AssertionError(f"no check for the annotation {hint!r}")


def problem(field: str, value, is_default: bool) -> str | None:
    """What is wrong with one claim of the doc, or None."""
    if field not in FIELDS:
        return f"`{field}` is not a PPOConfig field"
    if value is NO_VALUE:
        return None
    if not fits(value, HINTS[field]):
        return f"`{value}` is not a value of {field} ({HINTS[field]})"
    kwargs = {field: value}
    if field == "advantage_estimator" and value in core.GROUP_ESTIMATORS:
        kwargs["num_generations"] = 4
    if field == "scale_rewards" and value is not None:  # grpo's choice: asked of grpo
        kwargs.update(advantage_estimator="grpo", num_generations=4)
    try:
        PPOConfig(**kwargs)
    except ValueError as error:
        return f"PPOConfig({kwargs}) is refused: {error}"
    if is_default and FIELDS[field].default != value:
        return f"the doc says {field} defaults to {value!r}, it is {FIELDS[field].default!r}"
    return None


CLAIMS = claims(DOC.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "setting,field,value,is_default", CLAIMS,
    ids=[f"{f}" if v is NO_VALUE else f"{f}={v}" for _, f, v, _ in CLAIMS])
def test_every_name_and_value_in_the_ours_column_is_real(setting, field, value, is_default):
    assert problem(field, value, is_default) is None, f"row {setting!r}: {problem(field, value, is_default)}"


def test_the_table_covers_the_settings_a_peer_user_needs():
    named = {field for _, field, _, _ in CLAIMS}
    assert len(ours_cells(DOC.read_text(encoding="utf-8"))) >= 20
    # cliprange_high (DAPO's Clip-Higher) is required: the doc maps TRL epsilon_high, OpenRLHF
    # --eps_clip_low_high and verl clip_ratio_high onto it.
    for field in ("advantage_estimator", "num_generations", "kl_coef", "use_kl_loss", "kl_loss_coef",
                  "kl_estimator", "kl_loss_estimator", "loss_agg_mode", "cliprange", "cliprange_high",
                  "dual_clip", "cliprange_value", "gamma", "lam", "ppo_epochs", "num_minibatches",
                  "grad_accum", "normalize_reward", "whiten_rewards", "missing_eos_penalty",
                  "mask_truncated_completions", "max_new_tokens", "temperature", "top_p",
                  "learning_rate", "adam_eps"):
        assert field in named, f"the doc's table does not name {field}"


def test_every_estimator_kl_estimator_and_loss_mode_of_ours_is_named():
    values = {(field, value) for _, field, value, _ in CLAIMS}
    for field, choices in (("advantage_estimator", core.ADVANTAGE_ESTIMATORS),
                           ("kl_estimator", core.KL_ESTIMATORS),
                           ("kl_loss_estimator", core.KL_ESTIMATORS),
                           ("loss_agg_mode", core.LOSS_AGG_MODES)):
        missing = [choice for choice in choices if (field, choice) not in values]
        assert not missing, f"the doc names no {field} value {missing}"


def test_the_check_catches_a_field_we_do_not_have():
    """The checks themselves: a misspelt field, a wrong value, a wrong default and an estimator
    PPOConfig refuses are each reported."""
    table = ("| setting | ours | TRL |\n|---|---|---|\n"
             "| a | `kl_coeff` `0.05` (default) | x |\n"
             "| b | `advantage_estimator` `grpo`, `reinforce_plus_plus` | x |\n"
             "| c | `kl_coef` `0.1` (default) | x |\n"
             "| d | `whiten_rewards` `whiten_reward` | x |\n")
    found = [problem(field, value, is_default) for _, field, value, is_default in claims(table)]
    assert found[0] == found[1] == "`kl_coeff` is not a PPOConfig field"
    assert found[2] is None and found[3] is None  # grpo is accepted (built with num_generations=4)
    assert "reinforce_plus_plus" in found[4]
    assert "defaults to 0.1" in found[6]
    assert "whiten_reward" in found[8]
    assert len(found) == 9
