# For mypy only. The tests import tests/integration/registry/test_registry_rebuild.py
# by its basename, `test_registry_rebuild` (pytest puts its directory on sys.path).
from integration.registry.test_registry_rebuild import *  # noqa: F403
