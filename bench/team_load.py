"""Team load test (issue 17): N developers' real daemons on one PostgreSQL, checked against N SQLite runs.

Each simulated developer is a real ``headroom daemon run`` process with a HOME of its own (logs in ``~/.claude``,
``~/.codex``, ``~/.gemini``), a user id, a machine id and a PostgreSQL role of its own (``headroom team add-user``).
The real logs of all three agents (``fixtures/sessions``, ``sessions-more``, ``generated``) are dealt out so every
developer has Claude, Codex and Gemini logs and no log is anyone else's; they are dropped into the HOMEs over the
first 70% of the run (JSONL files in two parts, split between two turns, so the daemons tail appended files), so
ingest, the memory feed, learn and the scheduled jobs interleave. Every job runs on a short interval
(``[scheduler] every``) so the hourly and nightly ones fire too.

At the end, with the logs all in and the daemons idle, it checks (and exits 1 on any failure):

- rows: per user, sessions, events, tool calls and usage rows and the token sums on PostgreSQL equal a single-user
  SQLite run of the same user's logs (ingest + memory feed in this process); memory: per user the private items and
  the sightings, and the set of team items (file reads, shared by content) equal the union of the SQLite files';
- jobs: every machine's job rows are exactly ``<machine>/<job>`` for its jobs; every machine ran its own jobs with
  no failure; each team-wide job ran on exactly one daemon, the one that leads;
- privacy: connected as each developer's role, no row of another user's private data is readable (sessions,
  events, tool calls, usage, proxy rows, files, issues, cursors, jobs, private items and their sightings, lessons
  neither theirs nor accepted), while their own rows all are.

Embeddings use the deterministic hash embedder (``HEADROOM_EMBED_BACKEND=hash``): twenty copies of the real model
(~100 MB and a core each while embedding) do not fit a 2-core machine; the vectors still go through pgvector.

Usage: ``python bench/team_load.py [--developers 20] [--minutes 10] [--every 60] [--json out.json]``
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from team_load_logs import DROP_SHARE, SOURCES, apply_drop, collect_units, deal, plan_drops

# Imported before the daemons start: the baseline runs the code they run, even if the tree changes meanwhile.
from headroom.daemon.cli.daemon_cmd import daemon_health
from headroom.daemon.ingest import Ingestor
from headroom.daemon.memory_feed import MemoryFeed
from headroom.daemon.paths import agent_roots_from_homes
from headroom.memory import identity
from headroom.memory.api import Memory
from headroom.memory.db import open_database
from headroom.memory.visibility import PRIVATE, visibility_for

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("HEADROOM_SHARED") or REPO.parent / "shared")
DAEMON = [sys.executable, "-c", "from headroom.daemon.cli import main; main()"]
#: Jobs each machine runs for itself, and jobs one leader runs for the whole database.
MACHINE_JOBS = ("learn-idle", "learn-nightly", "memory-backlog", "ccr-expiry")
TEAM_JOBS = ("memory-prune", "db-compact")
#: The share of the run over which logs are dropped in; the rest lets the daemons catch up.
# -- the developers ----------------------------------------------------------------------------------------------


@dataclass
class Developer:
    index: int
    user: str
    machine: str
    root: Path
    url: str
    process: subprocess.Popen[bytes] | None = None
    health: dict[str, Any] | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def headroom_home(self) -> Path:
        return self.root / "hh"

    def env(self, embed: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
        for name in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME", "GEMINI_DIR"):
            env.pop(name, None)
        env |= {
            "HOME": str(self.home),
            "HEADROOM_HOME": str(self.headroom_home),
            "HEADROOM_USER": self.user,
            "HEADROOM_MACHINE": self.machine,
            "HEADROOM_DATABASE_URL": self.url,
            "HEADROOM_PROXY_PORT": "0",
            "TZ": "UTC",
        }
        if embed == "off":
            env["HEADROOM_EMBEDDINGS"] = "off"
        else:
            env["HEADROOM_EMBED_BACKEND"] = embed
        return env

    def roots(self) -> dict[str, list[Path]]:
        """The log roots the daemon finds in this HOME (as ``paths.default_agent_roots`` would)."""

        homes = {"claude": ".claude", "codex": ".codex", "gemini": ".gemini"}
        return {a: agent_roots_from_homes(a, [self.home / h]) for a, h in homes.items()}  # type: ignore[arg-type]


def write_config(dev: Developer, every: float) -> None:
    jobs = ", ".join(f'"{job}" = {every}' for job in (*MACHINE_JOBS, *TEAM_JOBS))
    dev.headroom_home.mkdir(parents=True, exist_ok=True)
    (dev.headroom_home / "config.toml").write_text(
        f"[scheduler]\nevery = {{ {jobs} }}\n\n"
        "[learn]\nidle_minutes = 0.5\nauto_apply_personal = false\n\n"
        "[watcher]\ndebounce_ms = 200\n",
        encoding="utf-8",
    )
    for folder in (".claude/projects", ".codex/sessions", ".gemini/tmp"):
        (dev.home / folder).mkdir(parents=True, exist_ok=True)


def read_health(dev: Developer) -> dict[str, Any] | None:
    return daemon_health(dev.headroom_home / "state" / "proxy.json", timeout=10)


# -- PostgreSQL --------------------------------------------------------------------------------------------------


class Server:
    """pgserver's bundled PostgreSQL (as tests/pg.py starts it) with one database for the run."""

    def __init__(self, data: Path) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))
        import pgserver

        # Twenty daemons hold up to 5 connections each (memory/db.py POOL_SIZE + MAX_OVERFLOW): 100 at a burst,
        # PostgreSQL's default, and this harness needs a few of its own. The setting needs a restart.
        first = pgserver.get_server(data, cleanup_mode="stop")
        first.psql("ALTER SYSTEM SET max_connections = 200")
        first.cleanup()
        self.server = pgserver.get_server(data, cleanup_mode="stop")
        query = self.server.get_uri().split("?", 1)[1]
        self.socket_dir = dict(p.split("=", 1) for p in query.split("&"))["host"]
        self.server.psql("DROP DATABASE IF EXISTS team_load WITH (FORCE)")
        self.server.psql("CREATE DATABASE team_load")

    def url(self, user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@/team_load?host={self.socket_dir}"

    def close(self) -> None:
        self.server.cleanup()


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([*DAEMON, *args], check=False, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"headroom {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
    return done.stdout


# -- counting ----------------------------------------------------------------------------------------------------

_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens")


def counts(engine: Engine, user: str | None) -> dict[str, Any]:
    """What one user has in a database (``user`` None: every row, for a single-user SQLite file)."""
    where = "WHERE user_id = :u" if user is not None else ""
    and_ = "AND user_id = :u" if user is not None else ""
    params = {"u": user}
    out: dict[str, Any] = {}
    with engine.connect() as conn:

        def one(sql: str) -> Any:
            return conn.execute(text(sql), params).scalar()

        for table in ("sessions", "events", "tool_calls", "usage"):
            out[table] = one(f"SELECT count(*) FROM {table} {where}")
        for column in _TOKENS:
            out[f"usage.{column}"] = int(one(f"SELECT coalesce(sum({column}), 0) FROM usage {where}"))
        out["session_keys"] = sorted(
            f"{a}:{k}" for a, k in conn.execute(text(f"SELECT agent, key FROM sessions {where}"), params)
        )
        out["sightings"] = one(f"SELECT count(*) FROM memory_sightings {where}")
        if user is None:
            out["private_items"], team = as_shared(conn)
        else:
            out["private_items"] = one(f"SELECT count(*) FROM memory_items WHERE visibility = 'private' {and_}")
            shared = text("SELECT kind, content FROM memory_items WHERE visibility = 'team'")
            team = [(str(kind), str(content)) for kind, content in conn.execute(shared)]
    out["team_items"] = sorted({f"{kind}:{hash_text(content)}" for kind, content in team})
    return out


def as_shared(conn: Any) -> tuple[int, list[tuple[str, str]]]:
    """A single-user SQLite file's items as a shared database keeps them: the private count, the team items.

    One person's file keys an item by its content alone, so content met both privately (a ``cat`` of a
    repository file through the shell: a tool output) and as a repository file read is one item there, made
    ``team`` by the read. A shared database keys a private item by content and owner (memory/visibility.py),
    so the same user's two meetings are two items: the team's file read, and a private one holding the shell
    sighting, which no other member may read. Each sighting is classed as its draft was (only a file read has a
    path, and is ``team`` when the path is inside the project): an item counts as private when it has a private
    sighting, and as a team file read when it has a team one (both, when both).
    """
    rows = conn.execute(
        text(
            "SELECT i.id, i.kind, i.content, i.visibility, s.id, s.path, s.project "
            "FROM memory_items i LEFT JOIN memory_sightings s ON s.item_id = i.id"
        )
    ).all()
    private: set[int] = set()
    team: dict[int, tuple[str, str]] = {}
    for item_id, kind, content, visibility, sighting, path, project in rows:
        seen = visibility  # an item without sightings (saved, not fed): as it was stored
        if sighting is not None:
            seen = visibility_for("file_read", path, project or "") if path else PRIVATE
        if seen == PRIVATE:
            private.add(item_id)
        else:
            team[item_id] = ("file_read" if path else kind, content)
    return len(private), list(team.values())


def hash_text(content: str) -> str:
    import hashlib

    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def baseline(dev: Developer, work: Path) -> dict[str, Any]:
    """The same user's logs, as they ended up in the HOME, ingested and fed into a SQLite file of their own."""

    identity.configure(dev.user, dev.machine)
    url = f"sqlite:///{work / f'{dev.user}.db'}"
    db = open_database(url)
    try:
        Ingestor(db, dev.roots()).scan()  # type: ignore[arg-type]
        MemoryFeed(Memory(db).store).run()
    finally:
        db.close()
    engine = create_engine(url)
    try:
        return counts(engine, None)
    finally:
        engine.dispose()


# -- the checks --------------------------------------------------------------------------------------------------

#: Per table, the rows of someone else's that a member must never read (the policies' complement).
FOREIGN = {
    "sessions": "user_id <> headroom_user()",
    "events": "user_id <> headroom_user()",
    "tool_calls": "user_id <> headroom_user()",
    "usage": "user_id <> headroom_user()",
    "proxy_requests": "user_id <> headroom_user()",
    "source_files": "user_id <> headroom_user()",
    "ingest_issues": "user_id <> headroom_user()",
    "state_values": "user_id <> headroom_user() AND machine_id <> ''",
    "scheduler_jobs": "user_id <> headroom_user()",
    "memory_items": "user_id <> headroom_user() AND visibility <> 'team'",
    "memory_sightings": "user_id <> headroom_user() AND item_id NOT IN "
    "(SELECT id FROM memory_items WHERE visibility = 'team')",
    "lessons": "user_id <> headroom_user() AND coalesce(team_status, '') <> 'accepted' "
    "AND position(to_json(headroom_user())::text in seen_by) = 0",
}
OWN = ("sessions", "events", "tool_calls", "usage", "source_files", "scheduler_jobs")


def check_privacy(server: Server, owner: Engine, devs: list[Developer]) -> tuple[list[str], dict[str, int]]:
    failures: list[str] = []
    read = {"foreign_rows_readable": 0, "own_rows_checked": 0}
    for dev in devs:
        engine = create_engine(server.url(dev.user))
        try:
            with engine.connect() as conn:
                for table, foreign in FOREIGN.items():
                    n = conn.execute(text(f"SELECT count(*) FROM {table} WHERE {foreign}")).scalar_one()
                    read["foreign_rows_readable"] += n
                    if n:
                        failures.append(f"privacy: {dev.user} reads {n} of another user's rows in {table}")
                for table in OWN:
                    mine = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                    with owner.connect() as oc:
                        truth = oc.execute(
                            text(f"SELECT count(*) FROM {table} WHERE user_id = :u"), {"u": dev.user}
                        ).scalar_one()
                    read["own_rows_checked"] += truth
                    if mine != truth:
                        failures.append(f"privacy: {dev.user} reads {mine} of their own {truth} rows in {table}")
        finally:
            engine.dispose()
    return failures, read


def check_jobs(owner: Engine, devs: list[Developer]) -> tuple[list[str], dict[str, Any]]:
    failures: list[str] = []
    with owner.connect() as conn:
        stored = {(r[0], r[1]) for r in conn.execute(text("SELECT id, user_id FROM scheduler_jobs"))}
    expected = {(f"{d.machine}/{job}", d.user) for d in devs for job in (*MACHINE_JOBS, *TEAM_JOBS)}
    if stored != expected:
        failures.append(
            f"jobs: stored rows differ: missing {sorted(expected - stored)[:5]}, extra {sorted(stored - expected)[:5]}"
        )
    runs: dict[str, dict[str, int]] = {}
    leaders = [d.user for d in devs if d.health and d.health["components"]["scheduler"].get("leader")]
    for dev in devs:
        jobs = (dev.health or {}).get("components", {}).get("scheduler", {}).get("jobs")
        if not jobs:
            failures.append(f"jobs: no health from {dev.user}'s daemon")
            continue
        runs[dev.user] = {name: int(job["runs"]) for name, job in jobs.items()}
        for name, job in jobs.items():
            if job["failures"]:
                failures.append(f"jobs: {dev.user} {name} failed {job['failures']}x: {job['last_error']}")
        for name in MACHINE_JOBS:
            if not jobs.get(name, {}).get("runs"):
                failures.append(f"jobs: {name} never ran on {dev.machine}")
    if len(leaders) != 1:
        failures.append(f"jobs: {len(leaders)} leaders ({leaders})")
    for name in TEAM_JOBS:
        ran = [user for user, r in runs.items() if r.get(name)]
        if ran != leaders:
            failures.append(f"jobs: team job {name} ran on {ran}, the leader is {leaders}")
    summary = {
        "leader": leaders,
        "team_runs": {name: sum(r.get(name, 0) for r in runs.values()) for name in TEAM_JOBS},
        "machine_runs_min": {name: min((r.get(name, 0) for r in runs.values()), default=0) for name in MACHINE_JOBS},
        "machine_runs_total": {name: sum(r.get(name, 0) for r in runs.values()) for name in MACHINE_JOBS},
    }
    return failures, summary


def check_rows(owner: Engine, devs: list[Developer], work: Path) -> tuple[list[str], dict[str, Any]]:
    failures: list[str] = []
    totals: dict[str, int] = {}
    team_union: set[str] = set()
    for dev in devs:
        want = baseline(dev, work)
        got = counts(owner, dev.user)
        team_union |= set(want.pop("team_items"))
        got.pop("team_items")
        for key, value in want.items():
            if key == "session_keys":
                lost, extra = set(value) - set(got[key]), set(got[key]) - set(value)
                if lost or extra:
                    failures.append(f"rows: {dev.user} sessions lost {sorted(lost)[:3]}, extra {sorted(extra)[:3]}")
                continue
            totals[key] = totals.get(key, 0) + value
            if got[key] != value:
                failures.append(f"rows: {dev.user} {key}: PostgreSQL {got[key]} vs SQLite {value}")
    team_pg = set(counts(owner, "")["team_items"])
    if team_pg != team_union:
        failures.append(
            f"rows: team items: {len(team_union - team_pg)} lost, {len(team_pg - team_union)} not in any SQLite run"
        )
    totals["team_items"] = len(team_union)
    return failures, totals


# -- the run -----------------------------------------------------------------------------------------------------


def wait_until(condition: Any, seconds: float, step: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def owner_totals(owner: Engine) -> tuple[int, ...]:
    with owner.connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("events", "tool_calls", "usage", "memory_items", "memory_sightings")
        )


def settled(owner: Engine, devs: list[Developer], quiet_s: float) -> Iterator[bool]:
    """True once no row count moved for ``quiet_s`` and no daemon has files waiting."""
    last, since = owner_totals(owner), time.monotonic()
    while True:
        now = owner_totals(owner)
        busy = any(
            ((read_health(d) or {}).get("components", {}).get("ingest", {}).get("pending_paths") or 0) > 0 for d in devs
        )
        if now != last or busy:
            last, since = now, time.monotonic()
        yield time.monotonic() - since >= quiet_s


def run(
    developers: int = 20,
    minutes: float = 10.0,
    every: float = 60.0,
    *,
    shared: Path = DEFAULT_SHARED,
    sources: tuple[str, ...] = SOURCES,
    embed: str = "hash",
    work: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """The whole test; returns the report (``failures`` empty when everything held)."""
    work = work or Path(tempfile.mkdtemp(prefix="team-load-"))
    work.mkdir(parents=True, exist_ok=True)
    duration = minutes * 60
    started = time.monotonic()
    server = Server(work / "pg")
    devs: list[Developer] = []
    report: dict[str, Any] = {"developers": developers, "minutes": minutes, "every_s": every, "embedder": embed}
    try:
        owner_url = server.url()
        admin_env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
        admin_env |= {
            "HEADROOM_HOME": str(work / "admin"),
            "HOME": str(work / "admin"),
            "HEADROOM_USER": "admin",
            "HEADROOM_MACHINE": "admin-box",
            "HEADROOM_DATABASE_URL": owner_url,
            "HEADROOM_EMBEDDINGS": "off",
        }
        cli(admin_env, "db", "upgrade")
        hands = deal(collect_units(shared, sources), developers)
        for i in range(developers):
            user = f"dev{i + 1:02d}"
            cli(admin_env, "team", "add-user", user)
            dev = Developer(i, user, f"m{i + 1:02d}-{os.urandom(3).hex()}", work / user, server.url(user))
            write_config(dev, every)
            devs.append(dev)
        report["logs"] = {
            "files": sum(len(u.files) for h in hands for u in h),
            "bytes": sum(u.size for h in hands for u in h),
            "units_per_developer": [
                {a: sum(1 for u in h if u.agent == a) for a in ("claude", "codex", "gemini")} for h in hands
            ],
        }
        drops = plan_drops(hands, [d.home for d in devs], duration * DROP_SHARE)
        report["drops"] = len(drops)
        log(f"{developers} developers, {report['logs']['files']} files ({report['logs']['bytes'] / 1e6:.1f} MB) "
            f"in {len(drops)} drops over {duration * DROP_SHARE:.0f} s; jobs every {every:g} s")  # fmt: skip
        for dev in devs:
            with (dev.root / "daemon.out").open("ab") as out:  # a file, not a pipe: a full pipe would block it
                dev.process = subprocess.Popen(
                    [*DAEMON, "daemon", "run"], env=dev.env(embed), stdout=out, stderr=subprocess.STDOUT
                )
        if not wait_until(lambda: all(read_health(d) is not None for d in devs), 600, 2):
            down = [d.user for d in devs if read_health(d) is None]
            raise RuntimeError(f"daemons not up after 600 s: {down}")
        t0 = time.monotonic()
        report["startup_s"] = round(t0 - started, 1)
        log(f"all daemons up after {report['startup_s']} s")
        dead: list[str] = []
        while time.monotonic() - t0 < duration:
            elapsed = time.monotonic() - t0
            while drops and drops[0].when <= elapsed:
                apply_drop(heapq.heappop(drops))
            for dev in devs:
                if dev.process is not None and dev.process.poll() is not None and dev.user not in dead:
                    dead.append(dev.user)
                    log(f"{dev.user}'s daemon exited with {dev.process.returncode}")
            time.sleep(0.5)
        while drops:
            apply_drop(heapq.heappop(drops))
        owner = create_engine(owner_url)
        try:
            catch_up = time.monotonic()
            quiet = settled(owner, devs, quiet_s=max(2 * every, 20))
            calm = wait_until(lambda: next(quiet), 600, 3)
            report["catch_up_s"] = round(time.monotonic() - catch_up, 1)
            log(f"settled: {calm} after {report['catch_up_s']} s more")
            for dev in devs:
                dev.health = read_health(dev)
            failures = [f"daemon of {u} exited during the run" for u in dead]
            if not calm:
                failures.append("the daemons did not settle within 600 s after the last drop")
            job_failures, report["jobs"] = check_jobs(owner, devs)
            failures += job_failures
            privacy_failures, report["privacy"] = check_privacy(server, owner, devs)
            failures += privacy_failures
            with owner.connect() as conn:
                by_status = "SELECT coalesce(team_status, 'personal'), count(*) FROM lessons GROUP BY 1"
                report["lessons"] = {str(k): int(v) for k, v in conn.execute(text(by_status)).all()}
        finally:
            stop(devs)
        try:
            row_failures, report["rows"] = check_rows(owner, devs, work)
        finally:
            owner.dispose()
        failures += row_failures
        errors = {d.user: _errors(d) for d in devs}
        report["daemon_errors"] = {u: e for u, e in errors.items() if e}
        report["failures"] = failures
        report["wall_s"] = round(time.monotonic() - started, 1)
        return report
    finally:
        stop(devs)
        server.close()


def _errors(dev: Developer) -> list[str]:
    out = dev.root / "daemon.out"
    lines = out.read_text(encoding="utf-8", errors="replace").splitlines() if out.exists() else []
    return [line[:300] for line in lines if " ERROR " in line or "Traceback" in line][:10]


def stop(devs: list[Developer]) -> None:
    for dev in devs:
        if dev.process is not None and dev.process.poll() is None:
            dev.process.send_signal(signal.SIGTERM)
    for dev in devs:
        if dev.process is not None:
            try:
                dev.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dev.process.kill()
                dev.process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--developers", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between runs of every scheduled job")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--sources", default=",".join(SOURCES), help="fixture folders, comma-separated")
    parser.add_argument("--embed", default="hash", choices=("hash", "off", "auto"), help="the daemons' embedder")
    parser.add_argument("--work", type=Path, help="a folder for the HOMEs and the server (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="team-load-"))
    try:
        report = run(
            args.developers,
            args.minutes,
            args.every,
            shared=args.shared,
            sources=tuple(s for s in args.sources.split(",") if s),
            embed=args.embed,
            work=work,
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text_report = json.dumps(report, indent=2, sort_keys=True)
    if args.json:
        args.json.write_text(text_report + "\n", encoding="utf-8")
    print(text_report)
    for failure in report["failures"]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
