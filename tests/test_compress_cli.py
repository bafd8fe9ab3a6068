"""`headroom compress` and `headroom retrieve` through the real CLI, and the [engine] config table."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from headroom.daemon.cli import cli
from headroom.daemon.config import load_config
from headroom.daemon.errors import ConfigError
from headroom.engine import find_refs

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _log(n: int = 800) -> str:
    return "".join(
        f"2026-11-20 08:{i // 60 % 60:02d}:{i % 60:02d},{i % 1000:03d} "
        + ("ERROR db pool exhausted after 30000 ms\n" if i == 400 else f"INFO served request {i} in {i % 17} ms\n")
        for i in range(n)
    )


def test_compress_a_file_then_retrieve_it_byte_exact(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_log())
    runner = CliRunner()
    res = runner.invoke(cli, ["compress", str(log)])
    assert res.exit_code == 0, res.output
    assert "ERROR db pool exhausted after 30000 ms" in res.stdout
    assert "saved" in res.stderr
    refs = find_refs(res.stdout)
    assert refs
    whole = f"hr:{refs[0].id}"
    got = runner.invoke(cli, ["retrieve", whole])
    assert got.exit_code == 0
    assert got.stdout == log.read_text()
    part = runner.invoke(cli, ["retrieve", whole, "--lines", "2-3"])
    assert part.stdout == "".join(log.read_text().splitlines(keepends=True)[1:3])
    hits = runner.invoke(cli, ["retrieve", whole, "--query", "exhausted"])
    assert "401: " in hits.stdout


def test_compress_stdin_json_summary() -> None:
    res = CliRunner().invoke(cli, ["compress", "-", "--json", "-q", "why does the pool run out?"], input=_log())
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["tokens_after"] < data["tokens_before"]
    assert data["blocks"][0]["compressor"]
    assert "db pool exhausted" in data["output"]


def test_compress_a_request_body_keeps_its_shape(tmp_path: Path) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "what failed?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "sh", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": _log()},
        ],
    }
    path = tmp_path / "req.json"
    path.write_text(json.dumps(body))
    res = CliRunner().invoke(cli, ["compress", str(path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["model"] == "gpt-4o" and len(out["messages"]) == 3
    assert len(out["messages"][2]["content"]) < len(body["messages"][2]["content"]) / 2  # type: ignore[index]


def test_compress_source_file_uses_its_path_for_the_language() -> None:
    res = CliRunner().invoke(cli, ["compress", str(STDLIB / "configparser.py")])
    assert res.exit_code == 0, res.output
    assert "class RawConfigParser(MutableMapping):" in res.stdout
    assert len(res.stdout) < len((STDLIB / "configparser.py").read_text()) / 2


def test_retrieve_errors_are_one_line() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["retrieve", "hr:" + "a" * 12])
    assert res.exit_code == 1 and "not in the store" in res.output
    res = runner.invoke(cli, ["retrieve", "nonsense"])
    assert res.exit_code == 1 and "not a retrieval id" in res.output
    res = runner.invoke(cli, ["retrieve", "a" * 12, "--lines", "x-y"])
    assert res.exit_code == 2


def test_engine_config_table(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[engine]\nfile_read_policy = "exact"\nmin_tokens = 50\ndisabled = ["code"]\ntext_model = "/m"\n')
    engine = load_config(cfg).engine
    assert (engine.file_read_policy, engine.min_tokens, engine.disabled, engine.text_model) == (
        "exact",
        50,
        frozenset({"code"}),
        "/m",
    )
    for bad, match in (
        ('file_read_policy = "lossy"', "engine.file_read_policy"),
        ("min_tokens = -1", "engine.min_tokens"),
        ("colour = 1", "unknown setting 'engine.colour'"),
        ("disabled = 3", "engine.disabled"),
    ):
        cfg.write_text(f"[engine]\n{bad}\n")
        with pytest.raises(ConfigError, match=match):
            load_config(cfg)
