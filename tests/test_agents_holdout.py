"""The holdout with the real Claude Code and Codex CLIs: a held-out conversation reaches the provider untouched.

``../shared/agents-offline/run_all.sh`` drives the CLIs against the scripted fake upstream through
``bench/via_headroom.sh`` with ``[proxy] holdout = 1`` (every conversation held out) in one headroom home.
The tool outputs that reached the upstream must be byte for byte the reference run's (no proxy), every row
must be marked and belong to one conversation per CLI run, and ``stats --proxy`` must report the group.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import bench_module

REPO = Path(__file__).resolve().parent.parent
AGENTS = ("claude", "codex")
SCENARIO = "big-output"

pytestmark = pytest.mark.slow


def test_held_out_conversations_of_the_real_clis_go_upstream_untouched(shared: Path, tmp_path: Path) -> None:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed: run_all.sh installs the agent CLIs from the npm registry")
    headroom = Path(sys.executable).with_name("headroom")
    if not headroom.exists():
        pytest.skip(f"no headroom command beside {sys.executable} (make setup)")
    ab = bench_module("agents_bench")
    fixtures, home = tmp_path / "fixtures", tmp_path / "headroom-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "VIA"))}
    env |= {
        "AGENTS": " ".join(AGENTS),
        "SCENARIOS": SCENARIO,
        "FIXTURES": str(fixtures),
        "RUN_ROOT": str(tmp_path / "run"),
        "VIA": str(REPO / "bench" / "via_headroom.sh"),
        "VIA_DIR": str(tmp_path / "via"),
        "HEADROOM_BIN": str(headroom),
        "HEADROOM_VIA_HOME": str(home),
        "HEADROOM_VIA_HOLDOUT": "1",
    }
    proc = subprocess.run(
        ["bash", str(shared / "agents-offline" / "run_all.sh")],
        cwd=shared / "agents-offline",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"run_all failed:\n{proc.stderr[-3000:]}"
    for agent in AGENTS:
        ours = ab.load_requests(ab.request_dir(fixtures, agent, SCENARIO))
        ref = ab.load_requests(ab.request_dir(shared / "fixtures", agent, SCENARIO))
        assert ours and ref, agent
        assert ab.tool_bytes(ours).unique == ab.tool_bytes(ref).unique, agent  # not a byte removed
    stats = subprocess.run(
        [str(headroom), "stats", "--proxy", "--json"],
        env={**os.environ, "HEADROOM_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    savings = json.loads(stats.stdout)["savings"]
    for agent in AGENTS:
        figures = savings["agents"][agent]
        assert figures["requests"] >= 4 and figures["held_out_requests"] == figures["requests"], agent
        assert figures["tokens_removed"] == 0 and figures["cost_usd"] > 0, agent
    groups = {
        (c["agent"], c["held_out"]["conversations"], c["treated"]["conversations"]) for c in savings["comparison"]
    }
    assert groups == {(agent, 1, 0) for agent in AGENTS}
    assert all("not enough data" in c["result"] for c in savings["comparison"])
