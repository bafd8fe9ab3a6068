"""headroom as an MCP server: the server itself (``server``) and its registration with each agent (``install``).

The facade re-exports the installer's queries only: the server module imports the MCP SDK, which only
``headroom mcp serve`` should pay for, and the ``install`` / ``uninstall`` functions stay in their module so
that ``headroom.daemon.mcp.install`` keeps naming the module.
"""

from headroom.daemon.mcp.install import (
    Change,
    InstallError,
    config_file,
    installed_entry,
    is_installed,
    plan_install,
    plan_uninstall,
)

__all__ = [
    "Change",
    "InstallError",
    "config_file",
    "installed_entry",
    "is_installed",
    "plan_install",
    "plan_uninstall",
]
