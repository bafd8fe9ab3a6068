"""``headroom compress`` and ``headroom retrieve``: the engine from the shell.

``compress`` takes either a request (a JSON body with ``messages``, ``input`` or ``contents``, or a bare list
of messages) and prints the compressed request, or any other text (a log, a file, command output) and prints
it compressed as one tool result. The summary goes to stderr so stdout can be piped. Originals are kept in
the data dir, so ``headroom retrieve hr:…`` works from another shell later.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from headroom.daemon.cli.common import App, emit_json, json_option, pass_app
from headroom.engine.ccr import parse_line_range
from headroom.engine.text import DEFAULT_MODEL, summary_line

_BODY_KEYS = ("messages", "input", "contents")


def _request_messages(data: Any) -> tuple[list[Any], str | None] | None:
    """(messages, body key) when ``data`` is a request or a message list; ``None`` for plain data."""
    if isinstance(data, dict):
        for key in _BODY_KEYS:
            items = data.get(key)
            if (
                isinstance(items, list)
                and items
                and all(isinstance(m, dict) for m in items)
                and any(("role" in m or "type" in m or "parts" in m) for m in items)
            ):
                return items, key
        return None
    if isinstance(data, list) and data and all(isinstance(m, dict) and ("role" in m or "parts" in m) for m in data):
        return data, None
    return None


def _read_input(source: str) -> str:
    if source == "-":
        raw = sys.stdin.buffer.read()
    else:
        with open(source, "rb") as fh:
            raw = fh.read()
    return raw.decode("utf-8", errors="replace")


@click.command("compress")
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option("-q", "--question", help="What the text is needed for; relevant parts are kept in full.")
@click.option("-m", "--model", default=DEFAULT_MODEL, show_default=True, help="Model whose tokenizer counts tokens.")
@click.option("--frozen", type=int, default=0, help="A request's leading messages to keep byte-identical (cached).")
@json_option
@pass_app
def compress_cmd(app: App, source: str, question: str | None, model: str, frozen: int, as_json: bool) -> None:
    """Compress a request or a tool output (FILE or stdin) and print the result.

    A JSON request body or message list comes back as a compressed request; anything else is compressed as
    one tool result (a FILE path also tells the language). Originals stay retrievable: see `headroom retrieve`.
    """
    from headroom.engine import compress, compress_text
    from headroom.memory.ccr_store import FileCCRStore

    text = _read_input(source)
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    found = _request_messages(data)
    app.config.paths.ensure()  # owner-only data dir before any original is written
    store = FileCCRStore(app.config.paths.ccr_dir)
    output: Any
    if found is None:
        path = source if source != "-" else None
        output, result = compress_text(text, model, path=path, question=question, store=store, config=app.config.engine)
    else:
        messages, key = found
        result = compress(messages, model, question=question, store=store, frozen=frozen, config=app.config.engine)
        output = result.messages if key is None else {**data, key: result.messages}
    if as_json:
        emit_json({**result.summary(), "output": output})
        return
    click.echo(output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, indent=2))
    click.echo(summary_line(result, "headroom retrieve hr:<id>"), err=True)


def _parse_lines(value: str | None) -> tuple[int, int] | None:
    try:
        return parse_line_range(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--lines") from None


@click.command("retrieve")
@click.argument("ref", metavar="ID")
@click.option("--query", help="Only the lines that contain one of these words (numbered).")
@click.option("--lines", "line_range", metavar="FIRST-LAST", help="Only these lines of the original (1-based).")
@pass_app
def retrieve_cmd(app: App, ref: str, query: str | None, line_range: str | None) -> None:
    """Print the original behind a marker's hr:<id> (byte-exact), or part of it."""
    from headroom.engine import retrieve
    from headroom.memory.ccr_store import FileCCRStore

    text = retrieve(ref, FileCCRStore(app.config.paths.ccr_dir), query=query, lines=_parse_lines(line_range))
    sys.stdout.write(text)
    sys.stdout.flush()


def register(cli: click.Group) -> None:
    cli.add_command(compress_cmd)
    cli.add_command(retrieve_cmd)
