# For mypy only. test_registry_deferred_terminations imports the seed and helpers of
# tests/integration/registry/test_registry_bulk_termination.py by its basename.
from integration.registry.test_registry_bulk_termination import *  # noqa: F403
