"""``python -m headroom.daemon.cli``: what agents run to start the MCP server, with no PATH lookup needed."""

from headroom.daemon.cli import main

main()
