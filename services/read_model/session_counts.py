"""How many sessions match a filter: row by row, or from the kept counts where they answer.

On PostgreSQL statement triggers (revisions 0101, 0102) keep `listed_session_counts`: the open,
created browser/mobile sessions per tenant and type. A filter of session types only (the
unfiltered list included) is then that sum minus the few sessions already past `expires_at`
that the registry's sweeper has not closed yet (`kept_counted`): exact, without reading a row
per session. Every other filter, and every filter on SQLite, is counted row by row through
`filter_clause` (`rows_counted`). Which one a backend uses is its store's choice.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, and_, func, literal, select

from read_model.active import LISTED, Moment, TenantRef, listed_condition, unswept_condition
from read_model.session_query import FilterShape, filter_clause, filter_shape
from read_model.tables import listed_session_counts, sessions
from session_contracts.models import SessionFilter

_s = sessions.c
_c = listed_session_counts.c


def types_only(filter: SessionFilter | FilterShape) -> list[str] | None:
    """The session types a filter (or a filter's shape) asks for, when it asks for nothing
    else."""
    shape = dict(filter_shape(filter))
    types = cast(tuple[str, ...], shape.pop("session_type", ()))
    if shape:
        return None
    wanted = set(types) or set(LISTED)
    return sorted(wanted & set(LISTED))


def rows_counted(
    filter: SessionFilter | FilterShape,
    tenant_id: TenantRef,
    now: Moment,
    policies_at: datetime | None = None,
) -> ColumnElement[int]:
    """How many of the tenant's sessions active at `now` match `filter` (its values, or
    parameters of its shape: `filter_clause`, with `policies_at`), row by row (a scalar
    subquery)."""
    matching = filter_clause(filter, tenant_id, now, policies_at)
    return select(func.count()).select_from(sessions).where(matching).scalar_subquery()


def kept_counted(types: list[str], tenant_id: TenantRef, now: Moment) -> ColumnElement[int]:
    """How many of the tenant's sessions of these listed types are active at `now`, from
    `listed_session_counts` (PostgreSQL; scalar subqueries)."""
    if not types:
        return literal(0)
    open_ = select(func.coalesce(func.sum(_c.sessions), 0)).where(
        _c.tenant_id == tenant_id, _c.session_type.in_(types)
    )
    unswept = (
        select(func.count())
        .select_from(sessions)
        .where(
            and_(
                _s.tenant_id == tenant_id,
                listed_condition(),
                unswept_condition(now),
                _s.session_type.in_(types),
            )
        )
    )
    return open_.scalar_subquery() - unswept.scalar_subquery()
