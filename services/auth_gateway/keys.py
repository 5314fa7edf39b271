"""From a presented credential to the key its revocation is filed under, at request speed.

The gateway never files or looks up credentials: a request's credential becomes its handle
(`session_contracts.handles.session_handle`: SHA-256 of a domain prefix, the tenant and the
credential, unpadded base64url), and the revocation table is keyed by the tenant-qualified
record key `<tenant_id>/<handle>` (`record_key`), the key the registry writes revocations under.

`TenantKeys` holds one tenant's constant part: a SHA-256 state that has already absorbed the
domain prefix and the tenant, copied per credential (one hash of the credential's bytes
instead of the whole input), and the key prefix `<tenant_id>/`. The credential is hashed as the
bytes the client sent; for the printable ASCII credentials services issue, those are the bytes
`session_handle` hashes (tests hold the two equal). `TenantDirectory` keeps a `TenantKeys` per
tenant a resolver named, bounded.
"""

from __future__ import annotations

import binascii
import hashlib

from session_contracts.handles import HANDLE_DOMAIN, HANDLE_LENGTH, TENANT_ID, record_key

TENANT_PATTERN = TENANT_ID
"""A tenant id as the contract spells it (`session_contracts.models.TenantId`)."""
_URLSAFE = bytes.maketrans(b"+/", b"-_")
MAX_TENANTS = 10_000
"""Tenants whose prepared hash states a gateway keeps (the set is rebuilt past this)."""


class TenantKeys:
    """Table keys of one tenant's sessions: `<tenant_id>/<handle>` of a credential."""

    __slots__ = ("_hasher", "prefix", "tenant_id")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.prefix = record_key(tenant_id, "")
        """`<tenant_id>/`: every key of this tenant starts with it."""
        self._hasher = hashlib.sha256(HANDLE_DOMAIN + tenant_id.encode() + b"\x00")

    def key(self, credential: bytes) -> bytes:
        """`record_key(tenant_id, session_handle(tenant_id, credential))`, as bytes."""
        hasher = self._hasher.copy()
        hasher.update(credential)
        encoded = binascii.b2a_base64(hasher.digest(), newline=False)[:HANDLE_LENGTH]
        return self.prefix + encoded.translate(_URLSAFE)  # base64url, unpadded

    def handle(self, key: bytes) -> str:
        """The handle part of a key this object made."""
        return key[len(self.prefix) :].decode("ascii")


class TenantDirectory:
    """`TenantKeys` of every valid tenant id asked for; None for anything else."""

    def __init__(self, limit: int = MAX_TENANTS) -> None:
        self._limit = limit
        self._known: dict[str, TenantKeys] = {}

    def get(self, tenant_id: object) -> TenantKeys | None:
        """The keys of `tenant_id`, or None when it is not a tenant id (None included)."""
        found = self._known.get(tenant_id) if isinstance(tenant_id, str) else None
        if found is not None:
            return found
        if not isinstance(tenant_id, str) or TENANT_PATTERN.fullmatch(tenant_id) is None:
            return None
        if len(self._known) >= self._limit:
            self._known.clear()  # crude, but bounded; rebuilding one costs a hash state
        found = self._known[tenant_id] = TenantKeys(tenant_id)
        return found
