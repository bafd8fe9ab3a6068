"""Alembic migrations for headroom's database, shipped inside the package as ``headroom.migrations``.

They run automatically when the daemon or the CLI opens the DB (``headroom.memory.db.open_database``).
SQLite needs batch mode for most ALTERs; the models' naming convention keeps constraint names stable.
"""

# The newest revision, so that opening an up-to-date DB needs no Alembic import (a test keeps it true).
HEAD = "0009"
