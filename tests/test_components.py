"""The daemon's components keep one contract (daemon/component.py), and the service runs them without
reading their internals."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from headroom.daemon.component import Component, Health
from headroom.daemon.config import load_config
from headroom.daemon.service import HEALTH_ORDER, Service
from headroom.memory.writer import BatchWriter


def _threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_a_batch_writer_starts_its_thread_with_the_first_record_not_in_its_constructor() -> None:
    written: list[int] = []
    writer: BatchWriter[int] = BatchWriter(written.extend, "test-writer")
    assert _threads_named("test-writer") == [] and not writer.running
    writer.flush()  # nothing queued: nothing to start
    assert not writer.running
    writer.submit(1)
    assert writer.running
    writer.flush()
    writer.close()
    assert written == [1] and not writer.running
    writer.submit(2)  # after close: counted, never queued for a thread that is gone
    assert writer.dropped == 1 and _threads_named("test-writer") == []
    writer.close()  # idempotent


def test_a_writer_never_used_has_nothing_to_stop() -> None:
    writer: BatchWriter[int] = BatchWriter(lambda batch: None, "idle-writer")
    writer.close()
    assert not writer.running and writer.start() is False


def test_every_component_keeps_the_contract(claude_root: Path) -> None:
    service = Service(load_config())
    names = [c.name for c in service.components]
    assert sorted(names) == sorted(HEALTH_ORDER) and len(set(names)) == len(names)
    for component in service.components:
        assert isinstance(component, Component), component
        health = component.health()
        assert isinstance(health, Health) and health.state in ("stopped", "disabled"), (component.name, health)
        assert {"state", "last_error"} <= set(health.as_dict())


@pytest.mark.parametrize("internal", ["worker.state", ".IDLE", ".NIGHTLY", "scheduler.stats", "should_exit"])
def test_the_service_reads_no_component_internals(internal: str) -> None:
    import headroom.daemon.service as service_module

    source = Path(service_module.__file__).read_text(encoding="utf-8")
    assert internal not in source
