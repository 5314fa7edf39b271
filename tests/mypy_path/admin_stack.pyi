# For mypy only. The tests import tests/e2e/browser/admin_stack.py
# by its basename, `admin_stack` (pytest puts its directory on sys.path).
from e2e.browser.admin_stack import *  # noqa: F403
