"""How many of one tenant's searches a process reads at once: the rest wait, holding no
database connection, so one tenant's admins cannot take every connection of the shared pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TenantSlots:
    """At most `per_tenant` holders per tenant at a time; others of that tenant wait in turn.

    A tenant's semaphore lives only while someone holds or awaits it, so the map grows with
    the tenants searching at the moment, not with every tenant ever seen.
    """

    def __init__(self, per_tenant: int) -> None:
        if per_tenant < 1:
            raise ValueError("per_tenant must be at least 1")
        self.per_tenant = per_tenant
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, tenant_id: str) -> AsyncIterator[None]:
        """One of the tenant's slots, waited for if all are taken."""
        entry = self._slots.get(tenant_id)
        if entry is None:
            entry = self._slots[tenant_id] = (asyncio.Semaphore(self.per_tenant), [0])
        semaphore, users = entry
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._slots[tenant_id]

    def waiting(self, tenant_id: str) -> int:
        """How many of the tenant's callers hold or await a slot now."""
        entry = self._slots.get(tenant_id)
        return 0 if entry is None else entry[1][0]
