"""Shared set-up of the proxy tests: a fake provider and the proxy, both real servers on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fake_provider import FakeProvider, Served

from headroom.daemon.config import Config, load_config
from headroom.daemon.proxy.app import ProxyApp
from headroom.daemon.proxy.server import build_app
from headroom.memory.db import Database, open_database
from headroom.memory.memo_store import DBBlockMemo


@dataclass
class Rig:
    """A running fake provider (``fake``, at ``upstream``) and a running proxy in front of it (at ``url``)."""

    fake: FakeProvider
    upstream: str
    app: ProxyApp
    url: str
    db: Database
    config: Config

    def bodies(self, path_suffix: str = "") -> list[Any]:
        return [r.json() for r in self.fake.received if r.path.endswith(path_suffix) and r.body]

    def stats_rows(self, expected: int | None = None) -> list[dict[str, Any]]:
        """The proxy_requests rows; waits (a little) for ``expected`` rows (the client may have its answer
        a moment before the proxy files the record)."""
        from sqlalchemy import select

        from headroom.memory.models import ProxyRequestRow

        assert self.app.stats is not None
        deadline = time.monotonic() + 30  # counting a 20 MB request's tokens takes seconds on a busy machine
        while True:
            self.app.stats.flush(timeout=30)
            with self.db.transaction() as session:
                rows = [dict(r._mapping) for r in session.execute(select(ProxyRequestRow.__table__))]
            if expected is None or len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.02)


@contextmanager
def proxy_rig(*, prefix: str = "", prompt_cache: bool = False, **proxy_settings: Any) -> Iterator[Rig]:
    """The fake provider and the proxy (upstreams = the fake, plus ``prefix``), with stats in a real SQLite DB;
    ``prompt_cache`` makes the fake report cache reads and writes as a provider's prompt cache would."""
    fake = FakeProvider(prompt_cache=prompt_cache)
    config = load_config()
    config.paths.ensure()
    with Served(fake) as upstream:
        base = upstream.url + prefix
        proxy = replace(
            config.proxy, anthropic_upstream=base, openai_upstream=base, gemini_upstream=base, **proxy_settings
        )
        config = replace(config, proxy=proxy)
        db = open_database(config.database_url)
        app = build_app(config, db)
        try:
            with Served(app) as served:
                yield Rig(fake, upstream.url, app, served.url, db, config)
        finally:
            if app.stats is not None:
                app.stats.close()
            if isinstance(app.rewriter.memo, DBBlockMemo):  # as the daemon's ProxyServer does: its writer stops
                app.rewriter.memo.close()
            db.close()


def fixture_requests(shared: Path, agent: str, scenario: str, kind: str) -> list[dict[str, Any]]:
    """The request bodies a real CLI sent in one scenario, in order (``kind``: e.g. ``anthropic-main``)."""
    folder = shared / "fixtures" / "requests" / agent / scenario
    return [json.loads(p.read_bytes()) for p in sorted(folder.glob(f"*-{kind}.json"))]
