"""NUL characters out of stored text: one engine hook for every statement on every backend."""

from __future__ import annotations

from typing import Any

#: What a NUL character in stored text becomes (the Unicode replacement character).
NUL_REPLACEMENT = "\ufffd"


def strip_nul_parameters(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> tuple[str, Any]:
    """Replace NUL characters in every text parameter of every statement, on every backend (the one place).

    PostgreSQL refuses them in text (``text fields cannot contain NUL``), which aborted a whole scan over one
    tool output; SQLite stores them but C-string tools cut the text there. A tool output, a prompt or a raw
    record may carry one (a binary file cat'ed by an agent): it becomes U+FFFD and the rest is kept. Bytes
    parameters (vectors, pickles) are left alone. The check is one C-level scan per string; rows without NUL
    (nearly all) are passed through as they are.
    """
    if not parameters:
        return statement, parameters
    if executemany and isinstance(parameters, (list, tuple)):
        if not any(_has_nul(row) for row in parameters):
            return statement, parameters
        cleaned = [_clean_row(row) for row in parameters]
        return statement, tuple(cleaned) if isinstance(parameters, tuple) else cleaned
    if not _has_nul(parameters):
        return statement, parameters
    return statement, _clean_row(parameters)


def _has_nul(row: Any) -> bool:
    if isinstance(row, dict):
        return any(type(v) is str and "\x00" in v for v in row.values())
    if isinstance(row, (list, tuple)):
        return any(type(v) is str and "\x00" in v for v in row)
    return False


def _clean_row(row: Any) -> Any:
    if isinstance(row, dict):
        return {k: v.replace("\x00", NUL_REPLACEMENT) if type(v) is str else v for k, v in row.items()}
    cleaned = [v.replace("\x00", NUL_REPLACEMENT) if type(v) is str else v for v in row]
    return type(row)(cleaned) if isinstance(row, tuple) else cleaned
