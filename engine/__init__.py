"""headroom.engine: the compression pipeline (a pure library: no DB, no network, no threads).

The compressors arrive with the engine issue; for now the package holds the exception root that every
other package builds on.
"""

from headroom.engine.errors import HeadroomError

__all__ = ["HeadroomError"]
