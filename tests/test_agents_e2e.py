"""The real Claude Code, Codex (Responses over WebSocket) and gemini-cli binaries through ``headroom proxy``.

``../shared/agents-offline/run_all.sh`` drives each CLI non-interactively against a scripted fake upstream;
``VIA=bench/via_headroom.sh`` puts one headroom proxy in the middle of every run. What reached the fake
upstream is then compared with the reference captures in ``../shared/fixtures`` (the same CLIs, no proxy):
tool outputs must be at least half as many bytes, a follow-up request must repeat what the previous one sent
(no prefix-cache break the CLI did not make itself), and the CLIs must take the same steps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import bench_module

REPO = Path(__file__).resolve().parent.parent
AGENTS = ("claude", "codex-ws", "gemini")
SCENARIO = "big-output"

pytestmark = pytest.mark.slow


def test_agent_clis_through_the_proxy(shared: Path, tmp_path: Path) -> None:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed: run_all.sh installs the agent CLIs from the npm registry")
    headroom = Path(sys.executable).with_name("headroom")
    if not headroom.exists():
        pytest.skip(f"no headroom command beside {sys.executable} (make setup)")
    ab = bench_module("agents_bench")
    fixtures = tmp_path / "fixtures"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "VIA"))}
    env |= {
        "AGENTS": " ".join(AGENTS),
        "SCENARIOS": SCENARIO,
        "FIXTURES": str(fixtures),
        "RUN_ROOT": str(tmp_path / "run"),
        "VIA": str(REPO / "bench" / "via_headroom.sh"),
        "VIA_DIR": str(tmp_path / "via"),
        "HEADROOM_BIN": str(headroom),
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
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted((tmp_path / "via").rglob("*.log"))
    )
    assert proc.returncode == 0, f"run_all failed:\n{proc.stderr[-3000:]}\nproxy logs:\n{logs}"

    reference = shared / "fixtures"
    for agent in AGENTS:
        ours = ab.load_requests(ab.request_dir(fixtures, agent, SCENARIO))
        ref = ab.load_requests(ab.request_dir(reference, agent, SCENARIO))
        assert ours and ref, agent
        sent, before = ab.tool_bytes(ours), ab.tool_bytes(ref)
        assert sent.outputs == before.outputs, f"{agent}: {sent.outputs} tool outputs, reference {before.outputs}"
        assert sent.unique <= 0.5 * before.unique, f"{agent}: {sent.unique} tool-output bytes vs {before.unique}"
        # Every tool output is sent in one form only, in whichever request repeats it (WebSocket included).
        resent = {k: len(v) for k, v in ab.tool_texts(ours).items() if len(v) > 1}
        assert not resent, f"{agent}: tool outputs re-sent differently: {resent}"
        # A follow-up repeats the previous request's messages byte for byte, except where the CLI itself
        # changed one (the reference run shows where).
        extra = ab.extra_breaks(ab.prefix_breaks(ours), ab.prefix_breaks(ref))
        assert extra == [], f"{agent}: prefix broken at (follow-up, positions) {extra}"
        own_steps = ab.steps(ab.log_dir(fixtures, agent, SCENARIO))
        assert own_steps == ab.steps(ab.log_dir(reference, agent, SCENARIO)), f"{agent}: {own_steps}"
        assert len(own_steps) >= 4, f"{agent}: {own_steps}"
