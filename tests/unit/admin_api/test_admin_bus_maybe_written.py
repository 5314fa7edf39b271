"""What a failed send says about the record: refused before the broker's log (nothing was
changed), or possibly written (the 503 says the change may be applied).

When one request's record timed out, the producer was abandoned, and every other request whose
record was in flight failed with it ("producer abandoned"): those answered "nothing was
changed", though the broker may have written their records (a review, stop 66). The failure is
made by a producer of the test's own; what the broker does is not under test here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasAfterAppendError,
    ProducerClosed,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)

from admin_api.adapters.bus import BusUnavailable, KafkaBus
from session_contracts.models import TerminateSessions
from session_contracts.settings import KafkaSettings

COMMAND = TerminateSessions(
    command_id=uuid.uuid4(),
    requested_at=datetime(2026, 12, 7, tzinfo=UTC),
    tenant_id="acme",
    requested_by="admin-1",
    session_ids=["s" * 43],
)


class FailingProducer:
    """Fails every send with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "maybe_written"),
    [
        (KafkaTimeoutError("producer abandoned: another request timed out"), True),
        (KafkaConnectionError("connection lost"), True),
        (RequestTimedOutError(), True),
        (NotEnoughReplicasAfterAppendError(), True),  # in the leader's log already
        (ProducerClosed(), False),
        (MessageSizeTooLargeError(), False),
        (TopicAuthorizationFailedError(), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
async def test_a_failed_send_says_whether_the_broker_may_have_written_it(
    error: Exception, maybe_written: bool
) -> None:
    bus = KafkaBus(KafkaSettings(_env_file=None), publish_timeout=5)
    bus._producer = FailingProducer(error)
    with pytest.raises(BusUnavailable) as raised:
        await bus.terminate(COMMAND)
    assert raised.value.maybe_written is maybe_written


async def test_a_bus_not_connected_wrote_nothing() -> None:
    bus = KafkaBus(KafkaSettings(_env_file=None), publish_timeout=5)
    with pytest.raises(BusUnavailable) as raised:
        await bus.terminate(COMMAND)
    assert raised.value.maybe_written is False
