"""How many of one tenant's searches a process reads at once: the rest wait, holding no
database connection, so one tenant's admins cannot take every connection of the shared pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class _Slots:
    semaphore: asyncio.Semaphore
    users: int = 0
    """Holding or awaiting the semaphore."""


class TenantSlots:
    """At most `per_tenant` holders per tenant at a time; others of that tenant wait in turn.

    A tenant's semaphore lives only while someone holds or awaits it, so the map grows with
    the tenants searching at the moment, not with every tenant ever seen.
    """

    def __init__(self, per_tenant: int) -> None:
        if per_tenant < 1:
            raise ValueError("per_tenant must be at least 1")
        self.per_tenant = per_tenant
        self._slots: dict[str, _Slots] = {}

    @contextlib.asynccontextmanager
    async def hold(self, tenant_id: str) -> AsyncIterator[None]:
        """One of the tenant's slots, waited for if all are taken."""
        slots = self._slots.get(tenant_id)
        if slots is None:
            slots = self._slots[tenant_id] = _Slots(asyncio.Semaphore(self.per_tenant))
        slots.users += 1
        try:
            async with slots.semaphore:
                yield
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._slots[tenant_id]

    def waiting(self, tenant_id: str) -> int:
        """How many of the tenant's callers hold or await a slot now."""
        slots = self._slots.get(tenant_id)
        return 0 if slots is None else slots.users
