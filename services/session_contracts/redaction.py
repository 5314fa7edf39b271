"""Database URLs as they may be shown: printed by the CLIs and devstack, or logged.

A read model URL such as `postgresql+asyncpg://sessions:secret@db/sessions` carries its
password; what a person or a log sees is `postgresql+asyncpg://sessions:***@db/sessions`.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

HIDDEN = "***"


def redact_url(url: str) -> str:
    """`url` without its password (also in `password=` query parameters), for printing."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # not a URL SQLAlchemy can read: drop everything between the scheme and the last "@",
        # where credentials would be, rather than risk printing a password
        head, at, host = url.rpartition("@")
        if not at:
            return url
        scheme, separator, _ = head.partition("://")
        return f"{scheme}{separator}{HIDDEN}@{host}" if separator else f"{HIDDEN}@{host}"
    secret_keys = [key for key in parsed.query if "password" in key.lower()]
    if secret_keys:
        parsed = parsed.update_query_dict({key: HIDDEN for key in secret_keys})
    return parsed.render_as_string(hide_password=True)
