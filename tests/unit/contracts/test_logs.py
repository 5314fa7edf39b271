"""Repeated aiokafka errors during an outage are thinned to one line per interval."""

from __future__ import annotations

import logging

import pytest

from session_contracts.logs import KAFKA_LOGGERS, RepeatFilter, quiet_kafka_reconnects


def test_a_repeated_message_passes_once_per_interval_with_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    logger = logging.getLogger("aiokafka.test-repeat")
    logger.addFilter(RepeatFilter(30.0, clock=lambda: now[0]))
    with caplog.at_level(logging.ERROR, logger="aiokafka.test-repeat"):
        for second in range(0, 61):
            now[0] = float(second)
            logger.error("Unable connect to node with id %s: %s", 1, "refused")
            logger.error("Unable to update metadata from %s", [1])
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Unable connect to node with id 1: refused",
        "Unable to update metadata from [1]",
        "Unable connect to node with id 1: refused (29 more like this in the last 30 s)",
        "Unable to update metadata from [1] (29 more like this in the last 30 s)",
        "Unable connect to node with id 1: refused (29 more like this in the last 30 s)",
        "Unable to update metadata from [1] (29 more like this in the last 30 s)",
    ]


def test_installing_twice_leaves_one_filter_per_kafka_logger() -> None:
    quiet_kafka_reconnects()
    quiet_kafka_reconnects()
    for name in KAFKA_LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, RepeatFilter) for f in filters) == 1, name
