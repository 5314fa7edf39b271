"""How the running registry reads `session.expired` records, kept where a rebuild can compare
(`registry_signing`, one row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.tables import registry_signing
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import as_utc


@dataclass(frozen=True)
class SigningStanding:
    """Signing keys by their public ids (`record_signing.key_id`; empty: none, every
    `session.expired` applied) and `SESSIONS_RECORD_SIGNING_SINCE`."""

    key_ids: tuple[str, ...]
    since: datetime | None

    def describe(self) -> str:
        """One phrase for a refusal: what it names is public (key ids are in every signature)."""
        if not self.key_ids:
            return "no signing keys"
        since = (
            "no SESSIONS_RECORD_SIGNING_SINCE"
            if self.since is None
            else (f"SESSIONS_RECORD_SIGNING_SINCE {self.since.isoformat()}")
        )
        return f"keys {', '.join(self.key_ids)}, {since}"


async def write_signing(uow: UnitOfWork, standing: SigningStanding, now: datetime) -> None:
    """Keep `standing` as the registry's (the row replaced)."""
    row = {
        "id": 1,
        "key_ids": ",".join(standing.key_ids),
        "since": standing.since,
        "written_at": now,
    }
    statement = uow.store.insert(registry_signing)
    await uow.conn.execute(
        statement.on_conflict_do_update(
            index_elements=[registry_signing.c.id],
            set_={name: statement.excluded[name] for name in ("key_ids", "since", "written_at")},
        ),
        [row],
    )


async def read_signing(conn: AsyncConnection) -> tuple[SigningStanding, datetime] | None:
    """The registry's standing and when it wrote it; None before a registry of this release
    started on this database."""
    row = (await conn.execute(select(registry_signing))).first()
    if row is None:
        return None
    ids = tuple(name for name in row.key_ids.split(",") if name)
    since = None if row.since is None else as_utc(row.since)
    return SigningStanding(ids, since), as_utc(row.written_at)
