"""Format drift: record types the readers do not know are counted by ``doctor`` and warned about once.

``tests/fixtures/claude-drift`` mirrors a Claude Code 2.1.332 log (made-up content, the shapes of the
records that version writes: ``api-request``, ``api-request-blob``, ``api-request-shape``, ``atis-latch``,
``tools-used``, ``cost-state``) plus one record of a type no reader knows (``future-record``), and a file
holding only a ``teleported-from`` record, as real logs have.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from headroom.daemon.cli import cli
from headroom.daemon.cli.daemon_cmd import record_types_warning
from headroom.daemon.ingest import Ingestor, LogFile
from headroom.daemon.service import Service
from headroom.learn.model import EventKind
from headroom.learn.readers import ClaudeReader
from headroom.learn.readers.base import record_type
from headroom.memory.db import Database
from tests.helpers import read_whole
from tests.test_service import wait_for

ROOT = Path(__file__).resolve().parent / "fixtures" / "claude-drift" / "projects"
SESSION = ROOT / "-home-dev-drift" / "55555555-5555-4555-8555-555555555555.jsonl"
TELEPORTED = ROOT / "-home-dev-drift" / "66666666-6666-4666-8666-666666666666.jsonl"

reader = ClaudeReader()


def test_new_claude_records_are_read_or_dropped_and_only_the_unknown_one_is_kept_raw() -> None:
    batch = read_whole(reader, SESSION, ROOT)
    assert list(batch.sessions) == ["55555555-5555-4555-8555-555555555555"]
    assert batch.sessions["55555555-5555-4555-8555-555555555555"].cwd == "/home/dev/drift"
    unknown = [e for e in batch.events if e.kind is EventKind.UNKNOWN]
    assert [record_type(e.raw or "") for e in unknown] == ["future-record"]
    assert [e.text for e in batch.events if e.text and e.text.startswith("cost")] == [
        "cost so far: $0.0123 (claude-opus-5-5)"
    ]
    assert [(c.key, c.name) for c in batch.tool_calls if c.name] == [("toolu_drift_ls", "Bash")]
    assert len(batch.usage) == 1  # usage still comes from the assistant record only


def test_a_file_of_bookkeeping_records_is_no_session() -> None:
    batch = read_whole(reader, TELEPORTED, ROOT)
    assert not batch.sessions and not batch.events and len(batch) == 0


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ('{"type":"future-record","x":1}', "future-record"),
        ('{"timestamp":"t","type":"event_msg","payload":{"type":"brand_new"}}', "event_msg/brand_new"),
        ('{"$frobnicate":{"a":1}}', "(no type: $frobnicate)"),
        ("[1]", "(not an object)"),
        ("{", "(not JSON)"),
    ],
)
def test_record_type_names(raw: str, name: str) -> None:
    assert record_type(raw) == name


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "claude" / "projects"
    shutil.copytree(ROOT, root)
    return root


def test_ingestion_names_a_new_type_once_and_doctor_counts_it(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = _copy(tmp_path)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(root.parent))
    ingestor = Ingestor(db, {"claude": [root]})
    ingestor.scan()
    expected = {"agent": "claude", "type": "future-record", "cli_version": "2.1.332"}
    assert ingestor.new_record_types == [expected]
    assert sum("future-record" in r.getMessage() for r in caplog.records) == 1
    # The same type in another file (or after a restart) is no longer new.
    again = root / "-home-dev-drift" / "77777777-7777-4777-8777-777777777777.jsonl"
    again.write_text(SESSION.read_text().replace("55555555-5555-4555-8555-555555555555", again.stem))
    ingestor.ingest_file(LogFile("claude", root, again))
    restarted = Ingestor(db, {"claude": [root]})
    third = again.with_name("88888888-8888-4888-8888-888888888888.jsonl")
    third.write_text(SESSION.read_text().replace("55555555-5555-4555-8555-555555555555", third.stem))
    restarted.scan()
    assert ingestor.new_record_types == [expected] and restarted.new_record_types == []
    warning = record_types_warning({"components": {"ingest": {"new_record_types": ingestor.new_record_types}}})
    assert warning is not None and "claude future-record (CLI 2.1.332)" in warning
    assert record_types_warning({"components": {"ingest": {"new_record_types": []}}}) is None

    result = CliRunner().invoke(cli, ["doctor", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["unknown_record_types"] == [{**expected, "count": 3}]
    assert report["agents"]["claude"]["sessions"] == 3  # the teleported-from file is no session
    text = CliRunner().invoke(cli, ["doctor"], catch_exceptions=False).output
    assert "claude future-record ×3 (CLI 2.1.332)" in text


def test_the_running_daemon_reports_a_new_type_for_status(running_service: Service, claude_root: Path) -> None:
    """Through the real service: the file appears while it runs, health carries it, status words it."""
    wait_for(lambda: running_service.watcher is not None)
    target = claude_root / SESSION.parent.name
    shutil.copytree(SESSION.parent, target)

    def reported() -> list[dict[str, Any]]:
        return list(running_service.health()["components"]["ingest"]["new_record_types"])

    wait_for(lambda: bool(reported()), 30)
    assert reported() == [{"agent": "claude", "type": "future-record", "cli_version": "2.1.332"}]
    warning = record_types_warning(running_service.health())
    assert warning == (
        "warning: new log record types, kept raw but not read: claude future-record (CLI 2.1.332) "
        "(headroom doctor counts them)"
    )
