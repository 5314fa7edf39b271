# For mypy only. The tests import tests/unit/registry/hotloop_fakes.py
# by its basename, `hotloop_fakes` (pytest puts its directory on sys.path).
from unit.registry.hotloop_fakes import *  # noqa: F403
