"""Rows of nobody in particular on a shared PostgreSQL database, given to the developer whose they are.

Revision 0008 stamps every row a machine writes with its user and machine. A SQLite file is one person's, so
the upgrade stamped its old rows with the upgrading machine's identity; a shared PostgreSQL database was left
at ``''`` because the upgrading machine cannot tell whose they are. Those rows then belong to no member: row-
level security hides them from every role (a member's prompts of last month are gone from their own
``sessions``), and the member's daemon, meeting the same logs again under its own machine id, reads them anew
while the old session rows hold the keys. ``headroom team adopt`` (the owner, who knows whose machine wrote
them) hands them to one user and machine.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from headroom.memory.models import OWNED_TABLES


def adopt(
    conn: Connection, user: str, machine: str, *, cursors: Iterable[str], dry_run: bool = False
) -> dict[str, int]:
    """Give every unowned row (``user_id = ''``) to ``user`` on ``machine``; the count per table.

    ``cursors`` names the state values that are one machine's (the memory feed's and learn's cursors): an
    unowned one becomes ``machine``'s, so its feed goes on where the database's left off instead of feeding
    everything again. A source file the machine already follows under its own row keeps that row (the
    unowned duplicate stays, counted as ``source_files.kept``). ``dry_run`` counts and changes nothing.
    Run it as the tables' owner: a member's role sees no unowned row.
    """
    if not user or not machine:
        raise ValueError("adopt needs a user id and a machine id")
    params = {"u": user, "m": machine, "names": list(cursors)}
    counts: dict[str, int] = {}
    for table in OWNED_TABLES:
        if table == "state_values":
            where = "user_id = '' AND machine_id = '' AND name = ANY(:names) AND NOT EXISTS " \
                "(SELECT 1 FROM state_values o WHERE o.machine_id = :m AND o.name = state_values.name)"  # fmt: skip
        elif table == "source_files":
            where = "user_id = '' AND NOT EXISTS " \
                "(SELECT 1 FROM source_files o WHERE o.machine_id = :m AND o.path = source_files.path)"  # fmt: skip
            counts["source_files.kept"] = conn.execute(
                text(f"SELECT count(*) FROM source_files WHERE user_id = '' AND NOT ({where})"), params
            ).scalar_one()
        else:
            where = "user_id = ''"
        statement = f"SELECT count(*) FROM {table} WHERE {where}" if dry_run else (
            f"UPDATE {table} SET user_id = :u, machine_id = :m WHERE {where}"
        )  # fmt: skip
        result = conn.execute(text(statement), params)
        counts[table] = result.scalar_one() if dry_run else result.rowcount
    return counts
