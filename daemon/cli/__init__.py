"""The ``headroom`` command line: one click group, one module per command group.

The error boundary lives here: a :class:`~headroom.engine.errors.HeadroomError` (and a few mapped
third-party errors) becomes one line on stderr and exit code 1; only ``HEADROOM_RAISE_ERRORS=1`` shows
tracebacks. The library packages never import click.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from headroom.daemon.cli.common import App
from headroom.engine.errors import HeadroomError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """Maps known errors to clean messages at the outermost command; loads each command's module on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"headroom.daemon.cli.{COMMANDS[cmd_name]}").register(self)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from :data:`SUMMARIES`: ``headroom --help`` imports no command module."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
            elif command is None and name in SUMMARIES:
                rows.append((name, click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        if os.environ.get("HEADROOM_RAISE_ERRORS") == "1":
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except HeadroomError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:
            raise  # the reader went away (`| head`): click's main exits quietly, as other Unix tools do
        except OSError as exc:
            raise click.ClickException(os_error_message(exc)) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {exc} (set HEADROOM_RAISE_ERRORS=1 for a traceback)"
            ) from None


def os_error_message(exc: OSError) -> str:
    """``PATH: problem`` (as cat and ls say it), with a hint when the path is headroom's own and unwritable."""
    import errno

    from headroom.daemon.paths import paths

    problem = exc.strerror or str(exc)
    if exc.filename is None:
        return problem
    name = str(exc.filename)
    message = f"{name}: {problem}" + (f" (to {exc.filename2})" if exc.filename2 else "")
    mine = paths()
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and any(
        name == str(folder) or name.startswith(f"{folder}{os.sep}")
        for folder in (mine.data_dir, mine.state_dir, mine.config_dir)
    ):
        message += (
            "; headroom keeps its data there and this command needs to write it (read-only commands such as "
            "`stats --no-refresh`, `sessions`, `doctor` and `memory search` work without), or set HEADROOM_HOME"
        )
    return message


@click.group("headroom", cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="headroom", prog_name="headroom")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="Use this config.toml (must exist)."
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """headroom: a local companion for Claude Code, Codex CLI and Gemini CLI.

    It follows the agents' session logs into one database and shows where the tokens go and what fails.
    """
    app = ctx.ensure_object(App)
    app.config_path = config_path
    ctx.call_on_close(app.close)


#: Each command's module. A module is imported when its command runs, not at start: together they pull in
#: SQLAlchemy, alembic, numpy and httpx, over a second of start-up on a busy machine, which ``headroom memory
#: search`` asking the daemon and ``stats --no-refresh`` would pay every time.
COMMANDS = {
    "compress": "compress_cmd",
    "retrieve": "compress_cmd",
    "daemon": "daemon_cmd",
    "db": "db_cmd",
    "doctor": "doctor",
    "hooks": "hooks_cmd",
    "ingest": "ingest_cmd",
    "learn": "learn_cmd",
    "mcp": "mcp_cmd",
    "memory": "memory_cmd",
    "proxy": "proxy_cmd",
    "sessions": "sessions",
    "stats": "stats",
    "statusline": "statusline_cmd",
    "team": "team_cmd",
    "wrap": "wrap_cmd",
}


#: Each command's one-line help, as ``headroom --help`` lists it without importing the command's module
#: (tests/test_cli_imports.py checks each against the command's own docstring).
SUMMARIES = {
    "compress": "Compress a request or a tool output (FILE or stdin) and print the result.",
    "daemon": "Run or inspect the background service.",
    "db": "The configured database's schema: upgrade it (a team's admin), see its status.",
    "doctor": "Check the set-up: paths, config, database (revision, integrity), agents' logs found, what is "
    "ingested, what was skipped.",
    "hooks": "Briefings, prompt-time memory and live lessons through each agent's own hooks.",
    "ingest": "Ingest everything new in the agents' session logs, then exit.",
    "learn": "Mine the failed sessions and show (or --apply) the lessons: the project's in each agent's project "
    "file, machine facts and agent-tool lessons in each agent's user-level file.",
    "mcp": "The MCP server that gives agents elided originals back (headroom_retrieve), and its set-up.",
    "memory": "The shared memory of all agents: what they read, ran, fetched and decided, per project.",
    "proxy": "Run the compressing proxy in the foreground until Ctrl-C.",
    "retrieve": "Print the original behind a marker's hr:<id> (byte-exact), or part of it.",
    "sessions": "List sessions, newest first: agent, project, start, duration, turns, tool calls, failures, "
    "tokens, cost.",
    "stats": "Token totals (input without cache reads, output, cache read, cache write), their cost, tool-call "
    "failures.",
    "statusline": "Print one status line for the Claude Code session described by the JSON on stdin.",
    "team": "Developers sharing one PostgreSQL database (roles and row-level security).",
    "wrap": "Run AGENT (claude, codex or gemini) with its requests going through the headroom proxy.",
}


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="headroom", windows_expand_args=False)


if __name__ == "__main__":  # pragma: no cover
    main()
