"""Lazy package exports: `from rlhf import PPOTrainer` imports only the module that defines it,
so `import rlhf` (and `rlhf --help`) stays fast and torch-free until a name is used."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> tuple[Callable, Callable]:
    """Module-level `__getattr__` and `__dir__` for `package` that import `exports[name]` on first
    use of `name` and cache the value in the package's `namespace` (its globals())."""

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
