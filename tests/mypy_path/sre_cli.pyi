# For mypy only. The tests import tests/integration/registry/sre_cli.py
# by its basename, `sre_cli` (pytest puts its directory on sys.path).
from integration.registry.sre_cli import *  # noqa: F403
