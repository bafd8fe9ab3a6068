"""Facades that load on first use (PEP 562), for the packages whose modules are costly to import.

A package's ``__init__`` lists where each public name lives; importing the package stays cheap (the CLI
imports ``headroom.memory.db`` or ``headroom.learn.model`` on every command and must not pay for numpy, the
vector index or the readers to do so), and ``from headroom.learn import Batch`` still works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``where`` maps a public name to the submodule defining it."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__


__all__ = ["lazy_getattr"]
