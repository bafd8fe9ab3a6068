"""Each package's facade exports exactly what ``__all__`` names, and every name is importable.

A package without ``__all__`` fails here (it used to pass with nothing to check), and so does any module whose
``__all__`` names something ``from module import *`` cannot give (a name imported only for typing).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["headroom.engine", "headroom.memory", "headroom.learn", "headroom.daemon"]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_exist_and_are_sorted(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert names, f"{package} exports nothing"
    for name in names:
        assert getattr(module, name) is not None, f"{package}.__all__ names {name!r}, which it does not define"
    assert list(names) == sorted(names)
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    assert set(names) <= set(namespace)


@pytest.mark.parametrize("package", ["headroom.memory", "headroom.learn", "headroom.daemon"])
def test_a_lazy_facade_knows_where_every_name_lives(package: str) -> None:
    """The facades that load on first use list each name twice (``__all__`` and where it lives): they agree."""
    module = importlib.import_module(package)
    assert sorted(module._WHERE) == sorted(module.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        module.nonexistent  # noqa: B018


def _modules_with_all() -> list[str]:
    found = []
    for folder in ("engine", "memory", "learn", "daemon"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if re.search(r"^__all__", path.read_text(encoding="utf-8"), re.M) and path.name != "__init__.py":
                parts = path.relative_to(ROOT / folder).with_suffix("").parts
                found.append(".".join(("headroom", folder, *parts)))
    return found


@pytest.mark.parametrize("module", _modules_with_all())
def test_star_import_of_every_module_gives_its_all(module: str) -> None:
    names = importlib.import_module(module).__all__
    namespace: dict[str, object] = {}
    exec(f"from {module} import *", namespace)
    assert set(names) <= set(namespace)


def test_the_facades_are_the_public_api() -> None:
    from headroom import daemon, engine, learn

    assert {"compress", "compress_text", "retrieve", "CompressResult", "EngineConfig", "MemoryCCRStore"} <= set(
        engine.__all__
    )
    assert {"Batch", "reader_for", "write_batch", "project_of"} <= set(learn.__all__)
    assert {"Config", "load_config", "Service"} <= set(daemon.__all__)
