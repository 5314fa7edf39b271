# For mypy only. The tests import tests/integration/registry/registry_helpers.py
# by its basename, `registry_helpers` (pytest puts its directory on sys.path).
from integration.registry.registry_helpers import *  # noqa: F403
