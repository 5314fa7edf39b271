# For mypy only. The tests import tests/integration/gateway/test_gateway_demo_kafka.py
# by its basename, `test_gateway_demo_kafka` (pytest puts its directory on sys.path).
from integration.gateway.test_gateway_demo_kafka import *  # noqa: F403
