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
