# For mypy only. The tests import tests/reliability/hostile_records.py
# by its basename, `hostile_records` (pytest puts its directory on sys.path).
from reliability.hostile_records import *  # noqa: F403
