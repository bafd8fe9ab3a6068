"""Log lines are redacted before they reach the log file or stderr (DESIGN invariant 4)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from headroom.daemon.paths import paths
from headroom.daemon.process import setup_logging

GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
AWS_KEY = "AKIA" + "ABCDEFGHIJKLMNOP"


@pytest.fixture
def headroom_logger(isolated_home: Path) -> Iterator[logging.Logger]:
    logger = logging.getLogger("headroom")
    before = list(logger.handlers)
    yield logger
    for handler in logger.handlers[len(before) :]:
        logger.removeHandler(handler)
        handler.close()


def test_a_secret_in_a_message_or_a_traceback_never_reaches_the_log(
    headroom_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(paths())
    log = logging.getLogger("headroom.ingest")
    log.warning("could not store a row: %s", f"export GITHUB_TOKEN={GITHUB_TOKEN}")
    try:
        raise ValueError(f"the upstream said no to key {AWS_KEY}")
    except ValueError:
        log.exception("request failed")
    for handler in headroom_logger.handlers:
        handler.flush()
    written = paths().log_file.read_text(encoding="utf-8")
    shown = capsys.readouterr().err
    for text in (written, shown):
        assert "could not store a row" in text and "Traceback" in text and "ValueError" in text
        assert GITHUB_TOKEN not in text and AWS_KEY not in text
        assert "[REDACTED:github_token]" in text and "[REDACTED:aws_access_key]" in text
