# For mypy only. The tests import tests/integration/admin_api/admin_api_support.py
# by its basename, `admin_api_support` (pytest puts its directory on sys.path).
from integration.admin_api.admin_api_support import *  # noqa: F403
