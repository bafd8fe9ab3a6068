"""The real agent CLIs (Claude Code, Codex, gemini-cli) through the proxy, against the scripted fake upstream.

    python bench/agents_bench.py [--peer-bin /work/peer-venv/bin] [--agents "claude codex codex-ws gemini"]
                                 [--scenarios "big-output test-fix-correction"] [--json bench/results/X.json]

``../shared/agents-offline/run_all.sh`` runs every agent x scenario three ways, one after the other (the CLIs'
HOMEs are fixed paths, so two runs cannot overlap), each into its own FIXTURES and RUN_ROOT under ``--work``:

- ``none``: the CLIs talk to the fake upstream directly;
- ``headroom``: through ``bench/via_headroom.sh`` (this repository's ``headroom proxy``, one per run);
- ``peer``: through ``../shared/agents-offline/examples/via-headroom-ai.sh`` (headroom-ai's proxy).

For each agent x scenario the report gives:

- whether the run completed: no failure logged by run_all for it (a CLI exiting non-zero, a failed final
  check, a VIA start that failed, no session log);
- the **tool-output bytes that reached the upstream**: the text of every ``tool_result`` (Anthropic),
  ``function_call_output`` / ``custom_tool_call_output`` (OpenAI Responses, HTTP or WebSocket) and
  ``functionResponse`` (Gemini) in the request bodies the fake upstream logged, each tool output counted
  **once per conversation**: deduplicated by its tool-call id, first appearance. Taking the final request
  of a conversation would miss the WebSocket runs, whose frames carry only the new items. Gemini's resumed
  request repeats every earlier ``functionResponse``, which the id also folds. The sum over every request
  (each output counted as often as it is re-sent) is reported beside it;
- savings against ``none``;
- for headroom's proxy, **prefix stability** (see :func:`prefix_breaks`) and **the same steps** as without
  the proxy (the tool calls and their error flags read from the session logs the CLIs wrote, with
  ``summarize_logs.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))
OFFLINE = SHARED / "agents-offline"
RUN_ALL = OFFLINE / "run_all.sh"
VIA_HEADROOM = REPO / "bench" / "via_headroom.sh"
VIA_PEER = OFFLINE / "examples" / "via-headroom-ai.sh"
REFERENCE = SHARED / "fixtures"

#: run_all's agent variants: (family folder, label suffix)
VARIANTS = {
    "claude": ("claude", ""),
    "claude-defaultenv": ("claude", ".default-env"),
    "codex": ("codex", ""),
    "codex-codemode": ("codex", ".code-mode"),
    "codex-ws": ("codex", ".websocket"),
    "gemini": ("gemini", ""),
}
DEFAULT_AGENTS = "claude codex codex-ws gemini"
DEFAULT_SCENARIOS = "big-output test-fix-correction"
MODES = ("none", "headroom", "peer")
_OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output", "local_shell_call_output"})


# -- running ---------------------------------------------------------------------------------------------


@dataclass
class RunAll:
    """One run_all.sh invocation: where it wrote, how it ended, and its log."""

    mode: str
    fixtures: Path
    run_root: Path
    via_dir: Path | None
    rc: int
    wall_s: float
    failures: int | None
    log: str


def run_all(
    mode: str,
    work: Path,
    agents: str,
    scenarios: str,
    *,
    peer_bin: Path | None = None,
    headroom_bin: Path | None = None,
    timeout: float = 1800,
) -> RunAll:
    """Run the CLIs once, ``mode`` deciding what sits in the middle; everything lands under ``work/mode``."""
    base = work / mode
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    fixtures, run_root, via_dir = base / "fixtures", base / "run", base / "via"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "VIA", "PEER_BIN"))}
    env |= {"AGENTS": agents, "SCENARIOS": scenarios, "FIXTURES": str(fixtures), "RUN_ROOT": str(run_root)}
    if mode == "headroom":
        env |= {"VIA": str(VIA_HEADROOM), "VIA_DIR": str(via_dir)}
        if headroom_bin is not None:
            env["HEADROOM_BIN"] = str(headroom_bin)
    elif mode == "peer":
        if peer_bin is None:
            raise ValueError("the peer needs --peer-bin")
        env |= {"VIA": str(VIA_PEER), "VIA_DIR": str(via_dir), "PEER_BIN": str(peer_bin)}
    started = time.perf_counter()
    proc = subprocess.run(
        ["bash", str(RUN_ALL)],
        cwd=OFFLINE,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    (base / "run_all.log").write_text(log, encoding="utf-8")
    found = re.findall(r"failures=(\d+)", log)
    return RunAll(
        mode,
        fixtures,
        run_root,
        via_dir if mode != "none" else None,
        proc.returncode,
        wall,
        int(found[-1]) if found else None,
        log,
    )


def run_problems(log: str, agent: str, scenario: str) -> list[str]:
    """The failures run_all logged for one agent x scenario."""
    pats = (
        rf"{re.escape(agent)} {re.escape(scenario)} prompt \d+ rc=\d+",
        rf"FAILED final check for {re.escape(agent)}/{re.escape(scenario)}\b.*",
        rf"VIA start failed for {re.escape(agent)}/{re.escape(scenario)}$",
        rf"WARNING: {re.escape(agent)}/{re.escape(scenario)} wrote no session log.*",
    )
    return [m.group(0) for p in pats for m in re.finditer(p, log, re.MULTILINE)]


def run_seconds(log: str, agent: str, scenario: str) -> float | None:
    """Seconds from this run's start line to the next run's (or the end), from run_all's timestamps."""
    stamps = [(int(m[1]), m[2]) for m in re.finditer(r"^\[run_all\s+(\d+)s\] (.*)$", log, re.MULTILINE)]
    starts = [(t, text) for t, text in stamps if " / " in text and "(HOME=" in text]
    for i, (t, text) in enumerate(starts):
        if text.startswith(f"{agent} / {scenario} "):
            end = starts[i + 1][0] if i + 1 < len(starts) else stamps[-1][0]
            return float(end - t)
    return None


# -- request bodies --------------------------------------------------------------------------------------


@dataclass
class Request:
    seq: int
    kind: str  # anthropic-main, openai-responses-ws-main, gemini-side, …
    body: dict[str, Any]

    @property
    def main(self) -> bool:
        return self.kind.endswith("-main")


def request_dir(fixtures: Path, agent: str, scenario: str) -> Path:
    family, suffix = VARIANTS[agent]
    return fixtures / "requests" / family / f"{scenario}{suffix}"


def log_dir(fixtures: Path, agent: str, scenario: str) -> Path:
    family, suffix = VARIANTS[agent]
    return fixtures / "generated" / family / f"{scenario}{suffix}"


def load_requests(folder: Path) -> list[Request]:
    """Every JSON body (or WebSocket frame) the fake upstream logged, in arrival order."""
    out: list[Request] = []
    for path in sorted(folder.glob("[0-9]*.json")):
        if path.name.endswith(".meta.json"):
            continue
        try:
            body = json.loads(path.read_bytes())
        except ValueError:
            continue
        if isinstance(body, dict):
            seq, _, kind = path.stem.partition("-")
            out.append(Request(int(seq), kind, body))
    return out


def conversation(body: dict[str, Any]) -> tuple[str, list[Any]]:
    """(provider, the list of messages / items / contents) of one request body."""
    for key, provider in (("messages", "anthropic"), ("contents", "gemini"), ("input", "openai")):
        value = body.get(key)
        if isinstance(value, list):
            return provider, value
    return "other", []


def _text_of(value: Any) -> str:
    """The text a tool output carries: strings as they are, content blocks' ``text``, any other leaf as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return str(value["text"])
        return "".join(_text_of(v) for k, v in value.items() if k not in ("type", "cache_control"))
    return "" if value is None else json.dumps(value)


def tool_outputs(body: dict[str, Any]) -> list[tuple[str, int]]:
    """(tool-call id, UTF-8 bytes of its text) for every tool output in a request body."""
    provider, items = conversation(body)
    found: list[tuple[str, int]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if provider == "anthropic" and isinstance(item.get("content"), list):
            for block in item["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    found.append((str(block.get("tool_use_id")), len(_text_of(block.get("content")).encode())))
        elif provider == "openai" and item.get("type") in _OUTPUT_TYPES:
            found.append((str(item.get("call_id")), len(_text_of(item.get("output")).encode())))
        elif provider == "gemini":
            for j, part in enumerate(item.get("parts") or []):
                if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                    response = part["functionResponse"]
                    key = str(response.get("id") or f"{response.get('name')}@{i}.{j}")
                    found.append((key, len(_text_of(response.get("response")).encode())))
    return found


@dataclass
class ToolBytes:
    unique: int = 0  # each tool output once (first appearance)
    resent: int = 0  # summed over every request, as often as it is sent
    outputs: int = 0
    unstable: list[str] = field(default_factory=list)  # ids whose size changed between requests


def tool_bytes(requests: list[Request]) -> ToolBytes:
    seen: dict[str, int] = {}
    result = ToolBytes()
    for req in requests:
        for key, size in tool_outputs(req.body):
            result.resent += size
            if key not in seen:
                seen[key] = size
                result.unique += size
            elif seen[key] != size and key not in result.unstable:
                result.unstable.append(key)
    result.outputs = len(seen)
    return result


def tool_texts(requests: list[Request]) -> dict[str, set[str]]:
    """Every distinct serialized form each tool output was sent in (one form per id is stable)."""
    forms: dict[str, set[str]] = {}
    for req in requests:
        provider, items = conversation(req.body)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            pieces: list[tuple[str, Any]] = []
            if provider == "anthropic" and isinstance(item.get("content"), list):
                pieces = [
                    (str(b.get("tool_use_id")), b.get("content"))
                    for b in item["content"]
                    if isinstance(b, dict) and b.get("type") == "tool_result"
                ]
            elif provider == "openai" and item.get("type") in _OUTPUT_TYPES:
                pieces = [(str(item.get("call_id")), item.get("output"))]
            elif provider == "gemini":
                pieces = [
                    (
                        str(p["functionResponse"].get("id") or f"{p['functionResponse'].get('name')}@{i}.{j}"),
                        p["functionResponse"].get("response"),
                    )
                    for j, p in enumerate(item.get("parts") or [])
                    if isinstance(p, dict) and isinstance(p.get("functionResponse"), dict)
                ]
            for key, value in pieces:
                forms.setdefault(key, set()).add(_serial(value))
    return forms


# -- prefix stability ------------------------------------------------------------------------------------


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value


def _serial(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def prefix_breaks(requests: list[Request]) -> list[list[int]]:
    """For each follow-up main request of an HTTP conversation: the positions, among the previous request's
    messages, whose serialized bytes it does not repeat. ``[]`` everywhere is a perfectly stable prefix.

    The CLIs themselves change a few earlier messages: Claude Code moves its ``cache_control`` breakpoint
    from the previous last message to the new one (so that key is ignored), and gemini-cli rewrites its
    whole history on ``--resume``. A proxy is prefix-stable when it breaks nothing the CLI did not:
    :func:`extra_breaks` compares these lists with the same run made without it. WebSocket frames carry only
    new items (``previous_response_id``), so they have no prefix to compare; :func:`tool_texts` covers them.
    """
    mains = [r for r in requests if r.main and not r.body.get("previous_response_id")]
    out: list[list[int]] = []
    prev: list[str] | None = None
    for req in mains:
        _, items = conversation(req.body)
        cur = [_serial(_strip_cache_control(m)) for m in items]
        if prev is not None:
            out.append([i for i, m in enumerate(prev) if i >= len(cur) or cur[i] != m])
        prev = cur
    return out


def extra_breaks(proxied: list[list[int]], direct: list[list[int]]) -> list[tuple[int, list[int]]] | None:
    """(follow-up number, positions) the proxy broke beyond what the CLI broke on its own; ``None`` when the
    two runs do not have the same number of requests (their steps differ, which is reported separately)."""
    if len(proxied) != len(direct):
        return None
    return [(n, sorted(set(p) - set(d))) for n, (p, d) in enumerate(zip(proxied, direct), 1) if set(p) - set(d)]


# -- session logs ----------------------------------------------------------------------------------------


def _summarizer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("summarize_logs", OFFLINE / "summarize_logs.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {OFFLINE / 'summarize_logs.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def steps(folder: Path) -> list[str]:
    """The tool calls, name and arguments, in order, from the session logs the CLI wrote (each file read on
    its own with ``summarize_logs.py``, as its command line does).

    Results are left out on purpose: their text holds run-specific ids and timings, and whether gemini-cli's
    log shows a result as an error depends on how ``--resume`` rewrote the file (its ``$set`` of the whole
    history drops the tool-call records when the resumed run stays in the same minute, and lands in a new
    stub file when it does not). The calls are what the scripted model asked for, turn by turn."""
    summarize = _summarizer()
    out: list[str] = []
    for path in sorted(folder.rglob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out += [text for kind, text in summarize.detect(str(path), lines)(lines) if kind == "CALL"]
    return out


# -- the report ------------------------------------------------------------------------------------------


def analyse(
    runs: dict[str, RunAll], agents: list[str], scenarios: list[str], reference: Path | None = None
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for agent in agents:
        for scenario in scenarios:
            row: dict[str, Any] = {"agent": agent, "scenario": scenario}
            base_fixtures = runs["none"].fixtures if "none" in runs else reference
            base_reqs = load_requests(request_dir(base_fixtures, agent, scenario)) if base_fixtures else []
            base_bytes = tool_bytes(base_reqs)
            base_steps = steps(log_dir(base_fixtures, agent, scenario)) if base_fixtures else []
            for mode, run in runs.items():
                reqs = load_requests(request_dir(run.fixtures, agent, scenario))
                tb = tool_bytes(reqs)
                problems = run_problems(run.log, agent, scenario)
                cell: dict[str, Any] = {
                    "completed": not problems and run.rc is not None,
                    "problems": problems,
                    "seconds": run_seconds(run.log, agent, scenario),
                    "requests": len(reqs),
                    "tool_outputs": tb.outputs,
                    "tool_bytes": tb.unique,
                    "tool_bytes_resent": tb.resent,
                    "request_bytes": sum(
                        p.stat().st_size
                        for p in request_dir(run.fixtures, agent, scenario).glob("[0-9]*.json")
                        if not p.name.endswith(".meta.json")
                    ),
                }
                if mode != "none" and base_bytes.unique:
                    cell["saved_pct"] = round(100 * (1 - tb.unique / base_bytes.unique), 1)
                    cell["saved_resent_pct"] = round(100 * (1 - tb.resent / max(1, base_bytes.resent)), 1)
                if mode != "none":
                    own = steps(log_dir(run.fixtures, agent, scenario))
                    cell["same_steps"] = own == base_steps
                    cell["steps"] = len(own)
                    breaks = prefix_breaks(reqs)
                    extra = extra_breaks(breaks, prefix_breaks(base_reqs))
                    cell["prefix_pairs"] = len(breaks)
                    cell["prefix_extra_breaks"] = extra
                    cell["prefix_stable"] = extra == []
                    cell["tool_outputs_resent_differently"] = sorted(
                        k for k, forms in tool_texts(reqs).items() if len(forms) > 1
                    )
                    if run.via_dir is not None:
                        cell["proxy"] = proxy_facts(run.via_dir, agent, scenario, mode)
                else:
                    cell["steps"] = len(base_steps)
                row[mode] = cell
            rows.append(row)
    return {"rows": rows, "totals": totals(rows, list(runs))}


def proxy_facts(via_dir: Path, agent: str, scenario: str, mode: str) -> dict[str, Any]:
    """What the proxy's own log and (ours) stats database say about one run."""
    facts: dict[str, Any] = {}
    log = via_dir / f"{agent}-{scenario}.log"
    texts = [log.read_text(errors="replace")] if log.exists() else []
    daemon_log = via_dir / f"{agent}-{scenario}" / "state" / "logs" / "daemon.log"
    if daemon_log.exists():
        texts.append(daemon_log.read_text(errors="replace"))
    lines = [ln for t in texts for ln in t.splitlines()]
    facts["warnings"] = sorted({ln[24:] for ln in lines if re.search(r"\b(WARNING|ERROR|Traceback)\b", ln)})[:20]
    db = via_dir / f"{agent}-{scenario}" / "headroom.db"
    if mode == "headroom" and db.exists():
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            row = con.execute(
                "select count(*), sum(bytes_before), sum(bytes_after), sum(status >= 400), "
                "sum(error is not null), max(added_ms), sum(blocks_compressed) from proxy_requests"
            ).fetchone()
        keys = ("requests", "bytes_before", "bytes_after", "errors", "with_error", "max_added_ms", "blocks")
        facts["stats"] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in zip(keys, row)}
    return facts


def totals(rows: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        cells = [r[mode] for r in rows if mode in r]
        t: dict[str, Any] = {
            "runs": len(cells),
            "completed": sum(c["completed"] for c in cells),
            "tool_bytes": sum(c["tool_bytes"] for c in cells),
            "tool_bytes_resent": sum(c["tool_bytes_resent"] for c in cells),
        }
        if mode != "none" and "none" in modes:
            base = sum(r["none"]["tool_bytes"] for r in rows)
            base_resent = sum(r["none"]["tool_bytes_resent"] for r in rows)
            t["saved_pct"] = round(100 * (1 - t["tool_bytes"] / base), 1) if base else None
            t["saved_resent_pct"] = round(100 * (1 - t["tool_bytes_resent"] / base_resent), 1) if base_resent else None
            t["same_steps"] = sum(bool(c.get("same_steps")) for c in cells)
            t["prefix_stable"] = sum(bool(c.get("prefix_stable")) for c in cells)
        out[mode] = t
    return out


def markdown(report: dict[str, Any]) -> str:
    modes = [m for m in MODES if m in report["totals"]]
    head = ["agent / scenario"]
    for mode in modes:
        head += [f"{mode} done", f"{mode} tool bytes"] + ([f"{mode} saved"] if mode != "none" else [])
    head += ["steps same", "prefix stable"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        cells = [f"{row['agent']} / {row['scenario']}"]
        for mode in modes:
            c = row[mode]
            cells += ["yes" if c["completed"] else "**NO**", f"{c['tool_bytes']:,}"]
            if mode != "none":
                cells.append(f"{c.get('saved_pct', 0):.1f} %")
        ours = row.get("headroom", {})
        cells += [_yes(ours.get("same_steps")), _yes(ours.get("prefix_stable"))]
        lines.append("| " + " | ".join(cells) + " |")
    total = ["**total**"]
    for mode in modes:
        t = report["totals"][mode]
        total += [f"{t['completed']}/{t['runs']}", f"{t['tool_bytes']:,}"]
        if mode != "none":
            total.append(f"{t.get('saved_pct') or 0:.1f} %")
    ours_t = report["totals"].get("headroom", {})
    total += [
        f"{ours_t.get('same_steps', '')}/{ours_t.get('runs', '')}",
        f"{ours_t.get('prefix_stable', '')}/{ours_t.get('runs', '')}",
    ]
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines)


def _yes(value: Any) -> str:
    return "–" if value is None else ("yes" if value else "**NO**")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", default=DEFAULT_AGENTS, help=f"run_all AGENTS (default {DEFAULT_AGENTS!r})")
    ap.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help=f"run_all SCENARIOS (default {DEFAULT_SCENARIOS!r})")
    ap.add_argument("--modes", default="none,headroom,peer", help="which of none,headroom,peer to run")
    ap.add_argument("--peer-bin", type=Path, help="bin folder of a virtualenv with headroom-ai (the peer)")
    ap.add_argument("--peer-python", type=Path, help="the peer virtualenv's python (its folder is --peer-bin)")
    ap.add_argument("--headroom-bin", type=Path, help="the headroom command (default: the one beside this python)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/headroom-agents-bench"), help="scratch folder")
    ap.add_argument("--analyse-only", action="store_true", help="do not run anything: read what --work holds")
    ap.add_argument("--json", type=Path, help="write the report here")
    args = ap.parse_args(argv)
    peer_bin = args.peer_bin or (args.peer_python.parent if args.peer_python else None)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "peer" in modes and peer_bin is None:
        print("no --peer-bin / --peer-python: the peer is skipped", file=sys.stderr)
        modes.remove("peer")
    headroom_bin = args.headroom_bin or Path(sys.executable).with_name("headroom")
    if not shutil.which("npm") or not shutil.which("node"):
        raise SystemExit("node and npm are needed (run_all installs the CLIs from the npm registry)")
    runs: dict[str, RunAll] = {}
    for mode in modes:
        if args.analyse_only:
            base = args.work / mode
            log = (base / "run_all.log").read_text(encoding="utf-8")
            found = re.findall(r"failures=(\d+)", log)
            failures = int(found[-1]) if found else None
            runs[mode] = RunAll(
                mode,
                base / "fixtures",
                base / "run",
                base / "via" if mode != "none" else None,
                0 if failures == 0 else 1,
                float("nan"),
                failures,
                log,
            )
            continue
        print(f"run_all: {mode}", file=sys.stderr, flush=True)
        runs[mode] = run_all(mode, args.work, args.agents, args.scenarios, peer_bin=peer_bin, headroom_bin=headroom_bin)
        print(
            f"  rc={runs[mode].rc} failures={runs[mode].failures} in {runs[mode].wall_s:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    report = analyse(runs, args.agents.split(), args.scenarios.split())
    report["runs"] = {m: {"rc": r.rc, "failures": r.failures, "wall_s": round(r.wall_s, 1)} for m, r in runs.items()}
    report["command"] = " ".join(["python", "bench/agents_bench.py", *(argv if argv is not None else sys.argv[1:])])
    report["agents"], report["scenarios"] = args.agents, args.scenarios
    report["date"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with contextlib.suppress(ImportError):
        sys.path.insert(0, str(REPO / "bench"))
        from bench_report import machine

        report["machine"] = machine()
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
