# For mypy only. The tests import tests/e2e/test_first_path.py
# by its basename, `test_first_path` (pytest puts its directory on sys.path).
from e2e.test_first_path import *  # noqa: F403
