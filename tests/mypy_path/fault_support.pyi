# For mypy only. The tests import tests/reliability/fault_support.py
# by its basename, `fault_support` (pytest puts its directory on sys.path).
from reliability.fault_support import *  # noqa: F403
