"""Session handles and tenant-qualified record keys (contract v2).

A session's credential (the cookie value or bearer token a client presents) never leaves the
service that issued it and the gateway that checks it. Everything else (events, the read model,
the admin list, CSV files, revocations, logs) names the session by its **handle**: a
domain-separated SHA-256 of the tenant and the credential, as 43 characters of unpadded
base64url. Knowing a handle gives nothing to sign in with (SHA-256 is preimage resistant and
credentials are random, 128 bits or more); the same credential always gives the same handle,
so the publisher (`SessionEventPublisher`), the gateway and the v1 upcaster agree without
sharing any secret. The tenant is hashed in, so one credential string names two different
sessions in two tenants.

Every Kafka key is tenant-qualified: `<tenant_id>/<name>`. `/` is in neither a tenant id
(`[A-Za-z0-9._-]`) nor a handle (base64url), so a key splits one way only.
"""

from __future__ import annotations

import base64
import hashlib
import re

HANDLE_DOMAIN = b"session-control/session-handle/v1\x00"
"""Prefix of every hashed input: a handle can never equal a hash made for another purpose."""

HANDLE_LENGTH = 43
HANDLE_PATTERN = r"^[A-Za-z0-9_-]{43}$"
"""A handle: unpadded base64url of 32 bytes."""
_HANDLE = re.compile(HANDLE_PATTERN, re.ASCII)
TENANT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
"""A tenant id (`models.TenantId`), as `fullmatch` takes it."""
_KEY_SEPARATOR = "/"
V1_ID_MAX = 128
"""The longest v1 session id (contract v1: 1-128 printable ASCII characters)."""
CREDENTIAL_MAX = V1_ID_MAX
"""The longest credential the gateway checks (`auth_gateway.cookies.MAX_SESSION_ID`)."""


def credential_refusal(credential: str) -> str | None:
    """Why the gateway could not check `credential` (None: it can): 1-128 printable ASCII
    characters, no space, as the contract's session ids. A session whose credential the
    gateway does not check is never refused by it, so a publisher must not create one."""
    if not credential:
        return "is empty"
    if len(credential) > CREDENTIAL_MAX:
        return f"is {len(credential)} characters, over {CREDENTIAL_MAX}"
    if not (credential.isascii() and credential.isprintable()) or " " in credential:
        return "holds a character other than printable ASCII without spaces"
    return None


def session_handle(tenant_id: str, credential: str) -> str:
    """The public handle of the session whose credential is `credential` in `tenant_id`.

    SHA-256(HANDLE_DOMAIN ‖ tenant_id ‖ NUL ‖ credential), unpadded base64url. Both inputs are
    UTF-8; the NUL separates them (a tenant id holds no NUL), so no two pairs hash alike.
    """
    digest = hashlib.sha256(
        HANDLE_DOMAIN + tenant_id.encode() + b"\x00" + credential.encode()
    ).digest()
    return base64.urlsafe_b64encode(digest)[:HANDLE_LENGTH].decode("ascii")


def is_handle(value: str) -> bool:
    """Whether `value` has the shape of a handle (it says nothing of whose)."""
    return _HANDLE.fullmatch(value) is not None


def record_key(tenant_id: str, name: str) -> bytes:
    """The Kafka key of a record about `name` (a handle, a command id) in `tenant_id`."""
    return f"{tenant_id}{_KEY_SEPARATOR}{name}".encode()


def split_record_key(key: bytes | None) -> tuple[str, str] | None:
    """`(tenant_id, name)` of a tenant-qualified key, or None when `key` is not one."""
    if not key:
        return None
    try:
        text = bytes(key).decode("ascii")
    except UnicodeDecodeError:
        return None
    tenant_id, separator, name = text.partition(_KEY_SEPARATOR)
    if not separator or not tenant_id or not name:
        return None
    return tenant_id, name


def contract_key(key: bytes | None) -> tuple[str, str] | None:
    """`(tenant_id, handle)` of a contract v2 session key, or None for any other key (a v1
    key, a command's, none): what a gateway files a revocation under."""
    parts = split_record_key(key)
    if parts is None or not TENANT_ID.fullmatch(parts[0]) or not is_handle(parts[1]):
        return None
    return parts


def is_v1_key_of(key: bytes, tenant_id: str, handle: str) -> bool:
    """Whether `key` is the v1 key (the session id, which was the credential) of the session
    `handle` names in `tenant_id`: a record written before contract v2 keyed it so."""
    if not 0 < len(key) <= V1_ID_MAX:
        return False
    try:
        credential = bytes(key).decode("ascii")
    except UnicodeDecodeError:
        return False
    return session_handle(tenant_id, credential) == handle
