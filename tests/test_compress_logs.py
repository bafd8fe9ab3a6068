"""Log compressor on real logs: the SRE workload's loghub windows, the agent sessions' server.log, loghub."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from compress_helpers import run

from headroom.engine.compressors.base import Block, Skip
from headroom.engine.compressors.logs import LogCompressor, severity

JAVA_TRACE = (
    "java.net.NoRouteToHostException: No Route to Host from MININT-FNANLI5/127.0.0.1 to msra-sa-41:9000\n"
    + "".join(f"\tat org.apache.hadoop.ipc.Client.call{i}(Client.java:{1400 + i})\n" for i in range(30))
    + "".join(f"\tat java.lang.reflect.Method.invoke{i}(Method.java:{40 + i})\n" for i in range(10))
    + "Caused by: java.net.ConnectException: Connection refused\n\t... 12 more\n"
)


def _tool_texts(path: Path) -> list[str]:
    data: dict[str, Any] = json.loads(path.read_text())
    out: list[str] = []
    for m in data["messages"]:
        content = m.get("content")
        if m.get("role") == "tool" and isinstance(content, str):
            out.append(content)
    return out


def _log_results(shared: Path) -> tuple[dict[str, Any], list[str]]:
    wl = shared / "bench" / "workloads" / "sre_incident.json"
    if not wl.exists():
        pytest.skip("bench workloads absent")
    data = json.loads(wl.read_text())
    logs = [t for t in _tool_texts(wl) if LogCompressor().sniff(Block(t))]
    return data, logs


def _tokens(shared: Path, text: str) -> int:
    sys.path.insert(0, str(shared / "bench"))
    try:
        import benchcore  # type: ignore[import-not-found]

        return len(benchcore.get_encoding("o200k_base").encode(text, disallowed_special=()))
    except Exception:
        return len(text) // 4
    finally:
        sys.path.pop(0)


def test_sre_needles_survive_and_savings(shared: Path) -> None:
    data, logs = _log_results(shared)
    assert len(logs) == 3, "Hadoop, ZooKeeper and Apache windows should all look like logs"
    outs = [run(LogCompressor(), t, question=data["question"])[0] for t in logs]
    joined = "\n".join(outs)
    for needle in data["needles"]:
        if any(needle["text"] in t for t in logs):
            assert needle["text"] in joined, needle["why"]
    root = next(ln for ln in logs[0].splitlines() if "lost carrier" in ln)
    assert root in joined.splitlines()
    before = sum(_tokens(shared, t) for t in logs)
    after = sum(_tokens(shared, o) for o in outs)
    assert after <= 0.2 * before, (before, after)


def test_error_repeats_collapse_with_count(shared: Path) -> None:
    _, logs = _log_results(shared)
    hadoop = logs[0]
    out, ctx = run(LogCompressor(), hadoop)
    lines = hadoop.splitlines()
    rm = [ln for ln in lines if "ERROR IN CONTACTING RM" in ln]
    assert len(rm) > 5
    shown = out.splitlines()
    assert rm[0] in shown and rm[-1] in shown
    assert sum(1 for ln in shown if ln in rm) == 2
    assert any(ln.startswith(f"[×{len(rm)}] ") and "ERROR IN CONTACTING RM" in ln for ln in shown)
    assert re.search(r"\[×\d+\] INFO .*Progress of TaskAttempt <\*> is : <\*>  first 18:04:\S+ last 18:06:", out)
    assert lines[0] in shown and lines[-1] in shown
    assert ctx.dropped["lines"] > 300


def test_every_error_line_of_agent_server_log(shared: Path) -> None:
    wl = shared / "bench" / "workloads" / "agent_session_codex.json"
    if not wl.exists():
        pytest.skip("bench workloads absent")
    data = json.loads(wl.read_text())
    texts = [t for t in _tool_texts(wl) if " ERROR " in t and LogCompressor().sniff(Block(t))]
    assert texts
    for text in texts:
        out, _ = run(LogCompressor(), text, question=data["question"])
        for ln in text.splitlines():
            if " ERROR " in ln:
                assert ln in out.splitlines()
        assert len(out) < len(text) / 5


@pytest.mark.parametrize("name", ["Zookeeper_2k.log", "Hadoop_2k.log", "HDFS_2k.log", "Apache_2k.log", "BGL_2k.log"])
def test_loghub_savings(shared: Path, name: str) -> None:
    path = shared / "bench" / "data" / "loghub" / name
    if not path.exists():
        pytest.skip(f"{name} absent")
    text = path.read_text(errors="replace")
    assert LogCompressor().sniff(Block(text))
    out, _ = run(LogCompressor(), text)
    assert _tokens(shared, out) <= 0.2 * _tokens(shared, text)
    for ln in text.splitlines():
        if severity(ln) == 2 and "FATAL" in ln and name != "BGL_2k.log":
            assert any(o.startswith(ln[:40]) or o.startswith("[×") for o in out.splitlines())


def test_rare_info_line_and_question_hit_survive(shared: Path) -> None:
    path = shared / "bench" / "data" / "loghub" / "HDFS_2k.log"
    if not path.exists():
        pytest.skip("loghub absent")
    lines = path.read_text().splitlines()[:1500]
    injected = "081109 204655 556 INFO dfs.DataNode: disk /data7 remounted read-only by kernel"
    lines.insert(700, injected)
    text = "\n".join(lines) + "\n"
    out, _ = run(LogCompressor(), text)
    assert injected in out.splitlines()
    probe = lines[900]
    blk = re.search(r"blk_-?\d+", probe)
    assert blk
    out_q, _ = run(LogCompressor(), text, question=f"what happened to block {blk.group()}?")
    assert any(blk.group() in ln and not ln.startswith("[") for ln in out_q.splitlines())


def test_stack_trace_under_error_is_kept_and_trimmed(shared: Path) -> None:
    path = shared / "bench" / "data" / "loghub" / "Hadoop_2k.log"
    if not path.exists():
        pytest.skip("loghub absent")
    lines = path.read_text().splitlines()[:600]
    head = "2015-10-18 18:06:26,029 ERROR [main] org.apache.hadoop.mapred.YarnChild: Exception running child : x"
    text = "\n".join([*lines[:300], head, *JAVA_TRACE.splitlines(), *lines[300:]]) + "\n"
    out, _ = run(LogCompressor(), text)
    shown = out.splitlines()
    assert head in shown
    assert JAVA_TRACE.splitlines()[0] in shown
    assert "Caused by: java.net.ConnectException: Connection refused" in shown
    assert "\tat java.lang.reflect.Method.invoke5(Method.java:45)" not in shown


def test_deterministic(shared: Path) -> None:
    data, logs = _log_results(shared)
    for t in logs:
        assert (
            run(LogCompressor(), t, question=data["question"])[0]
            == run(LogCompressor(), t, question=data["question"])[0]
        )


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("2024-01-01 10:00:00 ERROR boom", 2),
        ("[Sun Dec 04 17:20:46 2005] [error] mod_jk child", 2),
        ('{"ts":1,"level":"error","msg":"x"}', 2),
        ("time=1 level=warn msg=slow", 1),
        ("E0612 12:34:56.789012 1234 server.go:42] failed", 2),
        ("W0612 12:34:56.789012 1234 server.go:42] slow", 1),
        ("2024-01-01 10:00:00 INFO fine", 0),
        ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown", 0),
    ],
)
def test_severity_syntaxes(line: str, level: int) -> None:
    assert severity(line) == level


def test_huge_input_runs() -> None:
    lines = []
    for i in range(200_000):
        lvl = "ERROR" if i % 9973 == 0 else "INFO"
        lines.append(f"12:{i // 6000 % 60:02d}:{i // 100 % 60:02d} {lvl} w{i % 16} req {i:06x} {i % 300}ms")
    text = "\n".join(lines) + "\n"
    out, _ctx = run(LogCompressor(), text)
    errors = [ln for ln in lines if " ERROR " in ln]
    shown = out.splitlines()
    assert errors[0] in shown and errors[-1] in shown and errors[1] not in shown
    assert any(ln.startswith(f"[×{len(errors)}] ERROR") for ln in shown)
    assert len(out) < len(text) / 50


@pytest.mark.parametrize(
    "junk",
    [
        bytes(range(256)).decode("latin-1") * 300,
        "2024-01-01 10:00:00 INFO \x00\x01\x02 caf\xe9\r\n" * 300,
        "2024-01-01 10:00:00 ERROR \ud800 lone surrogate\u2028next\x0c\n" * 300,
        "[x]\n" * 1000,
        "",
    ],
)
def test_junk_never_crashes(junk: str) -> None:
    c = LogCompressor()
    c.sniff(Block(junk))
    with contextlib.suppress(Skip):
        run(c, junk)


def test_prose_and_json_are_not_logs() -> None:
    prose = "This module explains how the cache works.\nIt keeps entries for a while.\n" * 30
    rows = "\n".join(json.dumps({"id": i, "name": f"n{i}"}) for i in range(60))
    assert not LogCompressor().sniff(Block(prose))
    assert not LogCompressor().sniff(Block(rows))
