"""Each package's facade exports exactly what ``__all__`` names, and every name is importable."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["headroom.engine", "headroom.memory", "headroom.learn", "headroom.daemon"])
def test_all_names_exist_and_are_sorted(package: str) -> None:
    module = importlib.import_module(package)
    names = getattr(module, "__all__", [])
    for name in names:
        assert hasattr(module, name), f"{package}.__all__ names {name!r}, which it does not define"
    assert list(names) == sorted(names)


def test_engine_facade_is_the_public_api() -> None:
    from headroom import engine

    assert {"compress", "retrieve", "CompressResult", "EngineConfig", "MemoryCCRStore"} <= set(engine.__all__)
