# For mypy only. The tests import tests/reliability/hostile_support.py
# by its basename, `hostile_support` (pytest puts its directory on sys.path).
from reliability.hostile_support import *  # noqa: F403
