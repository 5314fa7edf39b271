"""`python -m session_registry [command]`: the CLI; with no command, `run`."""

from __future__ import annotations

import sys

from session_registry.entrypoints.cli import app

if __name__ == "__main__":
    app(sys.argv[1:] or ["run"], prog_name="session-registry")
