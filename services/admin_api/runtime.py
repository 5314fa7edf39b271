"""What the routes need at run time, built once by `create_app` and kept on `app.state`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.adapters.bus import CommandBus
from admin_api.auth import TokenVerifier
from admin_api.settings import AdminApiSettings

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The engine, the Kafka bus, the token verifier, the clock and the metrics registry."""

    settings: AdminApiSettings
    engine: AsyncEngine
    bus: CommandBus
    verifier: TokenVerifier
    clock: Clock
    metrics: CollectorRegistry
