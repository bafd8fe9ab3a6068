"""Alembic migrations for headroom's database, shipped inside the package as ``headroom.migrations``.

They run automatically when the daemon or the CLI opens the DB (``headroom.memory.db.open_database``).
SQLite needs batch mode for most ALTERs; the models' naming convention keeps constraint names stable.
"""

# The newest revision, so that opening an up-to-date DB needs no Alembic import (a test keeps it true).
HEAD = "0014"
#: The oldest revision whose code can still use a schema at HEAD. ``headroom db upgrade`` records it in the
#: database; a client behind the schema continues only when it is at or past it. Raise it with a migration
#: that older code cannot live with (a dropped or renamed column, a new NOT NULL column without a default).
MIN_CLIENT_REVISION = "0012"
