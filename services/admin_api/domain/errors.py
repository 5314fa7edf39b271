"""What the admin API's use cases refuse, in their own terms; `entrypoints/errors.py` turns each
into its HTTP status and body."""

from __future__ import annotations


class NotFound(LookupError):
    """Nothing of that kind in the admin's tenant (another tenant's is not found either)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidParameter(ValueError):
    """A parameter that passed validation but cannot be honoured (a cursor not issued for this
    list, tenant, filter and sort): which one, why, and the value given."""

    def __init__(self, field: str, message: str, value: object) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.value = value


class SearchBudgetSpent(Exception):
    """A tenant's searches have spent the time they are given per minute
    (`service_layer.tenant_slots.SearchBudget`): the next may start in `retry_after` seconds."""

    def __init__(
        self, retry_after: float, seconds_per_minute: float, spent_by: str = "searches"
    ) -> None:
        super().__init__(
            f"this tenant's {spent_by} have used their {seconds_per_minute:g} s per minute of "
            f"database reading; retry in {retry_after:.0f} s, or narrow "
            "the search (a term in fewer sessions, or a filter beside it, reads less)"
        )
        self.retry_after = retry_after
        self.seconds_per_minute = seconds_per_minute


class ExportsBusy(Exception):
    """A tenant already has as many CSV exports streaming from this process as it may
    (`service_layer.tenant_slots.TenantExports`): the next may start once one has ended."""

    retry_after = 5.0

    def __init__(self, per_tenant: int) -> None:
        super().__init__(
            f"this tenant already has {per_tenant} CSV export(s) streaming from this server, "
            f"as many as it may; retry in {self.retry_after:.0f} s, once one has finished"
        )
        self.per_tenant = per_tenant


class OutcomeUnknown(Exception):
    """A change whose outcome this request cannot tell: Kafka took its record (or may have, its
    answer lost) and what had to follow failed. It may be applied, or may not; the client
    retries (a termination with its `Idempotency-Key` is then the same command). `log_extra`:
    the tenant and command the log line names, so an operator can find what went out."""

    def __init__(self, detail: str, log_extra: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.log_extra = log_extra or {}


class SettingsChangedMeanwhile(Exception):
    """A settings change sent with `If-Match` naming settings that are no longer the tenant's:
    another change was stored since the admin read them (412)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
