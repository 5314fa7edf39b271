"""The writes a batch collects while folding, flushed to the database in one go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import SessionEvent, SessionRevoked
from session_contracts.record_signing import RecordSigner
from session_contracts.topics import Topics
from session_registry.adapters.command_store import remember_revocations
from session_registry.adapters.outbox import OutboxRecord, add_to_outbox
from session_registry.adapters.session_store import save_history, save_sessions
from session_registry.domain.history import HistoryEntry, history_entry
from session_registry.domain.lifecycle import revocation
from session_registry.domain.state import SessionState

Key = tuple[str, str]


@dataclass
class Changes:
    """Writes collected while folding, flushed in one go."""

    states: dict[Key, SessionState] = field(default_factory=dict)
    history: dict[tuple[str, str], HistoryEntry] = field(default_factory=dict)
    outbox: list[OutboxRecord] = field(default_factory=list)
    revoked: list[SessionRevoked] = field(default_factory=list)
    drained: int = 0
    """Outbox records queued by earlier `drain`s (counted in `flush`'s result)."""

    def record(self, event: SessionEvent, detail: dict[str, Any] | None = None) -> None:
        """Keep the event's history entry (lifecycle events only); `detail`, when given, is
        the entry's detail already computed (many events of one command share it)."""
        entry = history_entry(event, detail)
        if entry is not None:
            self.history[(entry.tenant_id, entry.event_id)] = entry

    def publish_event(
        self, topics: Topics, event: SessionEvent, signer: RecordSigner | None = None
    ) -> None:
        """Queue an event for `sessions.events`, keyed `<tenant_id>/<handle>`; signed with
        `signer` when given (a record only the registry writes)."""
        key, value = record_key(event.tenant_id, event.session_id), encode(event)
        headers = () if signer is None else signer.headers(key, value)
        self.outbox.append(OutboxRecord(topics.events, key, value, headers))

    def revoke(
        self,
        topics: Topics,
        state: SessionState,
        headers: tuple[tuple[str, bytes], ...] = (),
        record: SessionRevoked | None = None,
    ) -> None:
        """Queue the revocation record of a terminated session (`record`, default
        `revocation(state)`), and remember it; `headers` go with the record (the trace
        context of the command that ended the session)."""
        self.publish_revocation(topics, record or revocation(state), headers)

    def publish_revocation(
        self, topics: Topics, record: SessionRevoked, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> None:
        """Queue a revocation record, keyed `<tenant_id>/<handle>`, and remember it."""
        self.revoked.append(record)
        self.outbox.append(
            OutboxRecord(
                topics.revocations,
                record_key(record.tenant_id, record.session_id),
                encode(record),
                headers,
            )
        )

    async def flush(self, uow: UnitOfWork, publish: bool, *, states: bool = True) -> int:
        """Write everything collected (the session rows unless `states` is false); return how
        many outbox records were queued, earlier `drain`s' included."""
        if states:
            await save_sessions(uow, self.states.values())
        await save_history(uow, self.history.values())
        if not publish:
            return self.drained
        await remember_revocations(uow, self.revoked)
        return self.drained + await add_to_outbox(uow, self.outbox)

    async def drain(self, uow: UnitOfWork, *, states: bool = True) -> None:
        """Write everything collected so far (publishing) and start over empty; the records
        queued are counted in `drained`."""
        self.drained = await self.flush(uow, True, states=states)
        self.states.clear()
        self.history.clear()
        self.outbox.clear()
        self.revoked.clear()
