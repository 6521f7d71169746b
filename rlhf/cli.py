"""The `rlhf` command: one sub-command per stage.

The commands are `rlhf.stages.STAGES`. Each stage is a dataclass (its fields, documented once, are the flags and the YAML keys of
`rlhf pipeline`) and a function that runs it. Sub-commands import their module only when called,
so `rlhf --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rlhf.stages import COMMANDS, ConfigError

USAGE = """usage: rlhf COMMAND [options]     (rlhf COMMAND --help lists every option)

The RLHF loop, one stage per command; each stage reads the files the previous one wrote.

commands:
{commands}

With no --model, stages use the embedded default model, SmolLM2-135M-Instruct.
"""


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {stage.help}" for name, stage in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def parse_config(config_cls, argv: list[str], prog: str, description: str):
    """Parse `argv` into one config dataclass with transformers' HfArgumentParser.

    Options must be spelled out (no prefixes: `--max_step` is not `--max_steps`, so a later option
    cannot change what a command means). An unknown option raises ValueError naming it and the closest
    real option."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(config_cls, prog=prog, description=description, allow_abbrev=False)
    for action in parser._actions:
        # HfArgumentParser adds --no_X for a bool field that defaults to True and copies X's help onto
        # it, ending "(default: False)": "--no_progress  Show a progress bar. (default: False)".
        if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0].startswith("--no_"):
            action.help, action.default = f"Turn --{action.dest} off (it is on by default).", argparse.SUPPRESS
        # argparse %-formats every help text: a field documented as "95% interval" would crash --help
        if action.help and "%(" not in action.help:
            action.help = action.help.replace("%", "%%")
    _, unknown = parser.parse_known_args(args=argv)  # before the dataclass checks its values
    if unknown:
        raise ValueError(unknown_option_message(parser, unknown))
    (config,) = parser.parse_args_into_dataclasses(args=argv)
    return config


def unknown_option_message(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """One line naming the first unknown option (or stray value) and the closest real option."""
    import difflib

    options = [opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")]
    flags = [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]
    if not flags:
        return f"unexpected value {unknown[0]!r} (options are --name value; {parser.prog} --help lists them)"
    flag = flags[0]
    close = difflib.get_close_matches(flag, options, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"{parser.prog} --help lists the options"
    return f"unknown option {flag} ({hint})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("--version", "-V"):
        from rlhf import __version__

        print(f"rlhf {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rlhf: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    stage = COMMANDS[name]
    module = importlib.import_module(stage.module)
    run, help_text = getattr(module, stage.run), stage.help
    if stage.config is None:
        return int(run(rest) or 0)
    config_cls = getattr(module, stage.config)
    from rlhf.data import DataError
    from rlhf.finite import NonFiniteError
    from rlhf.models import ModelNotFoundError

    try:
        # A config's __post_init__ raises ValueError for an impossible value (e.g. --k 1).
        config = parse_config(config_cls, rest, prog=f"rlhf {name}", description=f"{help_text}. {config_cls.__doc__ or ''}")
    except ValueError as err:
        print(f"rlhf {name}: error: {err}", file=sys.stderr)
        return 2
    try:
        run(config)
    except (ConfigError, DataError, ModelNotFoundError) as err:
        print(f"rlhf {name}: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:  # the run stopped before a NaN reached the weights or the output
        print(f"rlhf {name}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
