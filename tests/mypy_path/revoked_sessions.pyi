# For mypy only. The tests import tests/unit/gateway/revoked_sessions.py
# by its basename, `revoked_sessions` (pytest puts its directory on sys.path).
from unit.gateway.revoked_sessions import *  # noqa: F403
