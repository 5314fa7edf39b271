"""A tenant's session settings per session type: read them, change one and publish the change."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from admin_api.adapters import settings_store
from admin_api.adapters.bus import BusUnavailable, CommandBus
from admin_api.auth import Admin
from admin_api.domain.errors import OutcomeUnknown, SettingsChangedMeanwhile
from admin_api.domain.policies import PolicyChange, effective
from admin_api.runtime import Clock
from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import SessionSettingsChanged, SettableType, as_utc

TenantSettings = dict[SettableType, settings_store.StoredPolicy]
"""The settings the tenant changed, by type (types never changed are absent: defaults apply)."""


@dataclass(frozen=True)
class ChangeSettings:
    """New limits for the sessions of one type created from now on; made only while the
    tenant's settings are still those `if_match` names (their `settings_tag`), when given."""

    session_type: SettableType
    change: PolicyChange
    if_match: str | None = None


def settings_tag(stored: TenantSettings) -> str:
    """The tenant's settings as an entity tag (`ETag`): any stored change gives another (its
    values, its time, its admin). Quoted, as HTTP writes one."""
    rows = sorted(
        (
            str(kind),
            s.policy.max_session_seconds,
            s.policy.idle_timeout_seconds,
            as_utc(s.updated_at).isoformat(),
            s.updated_by,
        )
        for kind, s in stored.items()
    )
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:32]
    return f'"{digest}"'


MAX_IF_MATCH = 1024
"""The longest `If-Match` read, all its lines together (the API's tags are 34 characters)."""
_OWS = " \t"


def entity_tags(field: str) -> list[str] | None:
    """The entity tags of an `If-Match` list (RFC 9110 8.8.3, 13.1.1): each `"..."` or
    `W/"..."` as written, its quotes holding any visible character but `"` (a comma too);
    `["*"]` for a field that is `*` alone; None for a field that does not parse, or one longer
    than `MAX_IF_MATCH`. One pass, no backtracking: a regex read a long run of spaces in
    quadratic time, seconds of a worker's loop under the tenant's lock (a review, stop 71)."""
    if len(field) > MAX_IF_MATCH:
        return None
    if field.strip(_OWS) == "*":
        return ["*"]
    tags: list[str] = []
    at, end = 0, len(field)
    while True:
        while at < end and field[at] in _OWS + ",":  # empty list elements are allowed
            at += 1
        if at == end:
            return tags or None
        start = at
        if field.startswith("W/", at):
            at += 2
        if at == end or field[at] != '"':
            return None
        close = field.find('"', at + 1)
        if close < 0:
            return None
        opaque = field[at + 1 : close]
        if any(c < "!" or c == "\x7f" for c in opaque):
            return None
        tags.append(field[start : close + 1])
        at = close + 1
        while at < end and field[at] in _OWS:
            at += 1
        if at < end and field[at] != ",":
            return None


def _still(if_match: str, stored: TenantSettings) -> bool:
    """Whether `If-Match` names the stored settings: `*` alone, or one of its tags, compared
    strongly (a weak tag `W/"..."` never matches). A field that does not parse matches
    nothing."""
    tags = entity_tags(if_match)
    if tags is None:
        return False
    return tags == ["*"] or settings_tag(stored) in tags


async def read_settings(admin: Admin, store: Store) -> TenantSettings:
    """The settings the admin's tenant changed."""
    async with store.engine.connect() as conn:
        return await settings_store.load(conn, admin.tenant_id)


async def change_settings(
    command: ChangeSettings, admin: Admin, store: Store, bus: CommandBus, clock: Clock
) -> TenantSettings:
    """Publish the tenant's full settings, then store the change, in one transaction.

    Committed only once Kafka acknowledged the record, so login services and the API agree; a
    bus that is down (`BusUnavailable`) leaves the settings as they were. Written, and stamped,
    after the ack: a termination by `policy_outdated` compares sessions with the settings in
    force at its confirmed count (`read_model.session_query.policy_outdated`), and a change
    stamped before an ack that took a while, and committed after a count read meanwhile, would
    have been in force at that count without the count seeing it (found by a review,
    2026-12-06). What is left is the commit itself, milliseconds.

    One change of a tenant's settings at a time (`Store.lock_named`, taken before the settings
    are read): the record carries all of them, so two changes at once on PostgreSQL (of two
    types, by two admins) each published the other's type as it was before, and the later
    record undid the earlier change for login services while the database kept both.

    A database that fails once the record is on Kafka is `OutcomeUnknown`: login services have
    the change and this database not yet; the same change sent again stores it.

    With `if_match`, the change is made only on the settings it names, checked under the lock:
    two admins who read the same settings could each save, and the later undid the earlier
    without knowing of it (an incident's tightening undone by a page loaded before it: a
    review, stop 71). `SettingsChangedMeanwhile` (412) otherwise; nothing is published.
    """
    now = clock()
    published = False  # True also when Kafka may have it (its answer lost)
    try:
        # Not `run` (retried): the record may already be on Kafka when a retryable error strikes.
        async with UnitOfWork(store) as uow:
            policy = command.change.policy()
            await store.lock_named(uow.conn, f"session_settings/{admin.tenant_id}")
            before = await settings_store.load(uow.conn, admin.tenant_id)
            if command.if_match is not None and not _still(command.if_match, before):
                raise SettingsChangedMeanwhile(
                    "the settings changed since they were read (If-Match names others): read "
                    "them again, and make the change on what they are now"
                )
            current = {kind: s.policy for kind, s in before.items()}
            current[command.session_type] = policy
            try:
                await bus.settings_changed(
                    SessionSettingsChanged(
                        event_id=uuid.uuid4(),
                        occurred_at=now,
                        tenant_id=admin.tenant_id,
                        changed_by=admin.user_id,
                        settings=effective(current),
                    )
                )
            except BusUnavailable as exc:
                # set before the rollback, which may fail too and take the error's place
                published = exc.maybe_written
                raise
            published = True
            await settings_store.save(
                uow, admin.tenant_id, command.session_type, policy, clock(), admin.user_id
            )
            stored = await settings_store.load(uow.conn, admin.tenant_id)
    except (BusUnavailable, SQLAlchemyError, OSError) as exc:  # a bug is a 500, as ever
        if not published:
            raise
        # login services have the new settings, or may: "nothing was changed" would be false
        raise OutcomeUnknown(
            "the settings may have reached login services (Kafka took them, or did not "
            "answer in time), and they were not stored here: retry the same change",
            {"tenant_id": admin.tenant_id},
        ) from exc
    return stored
