"""Database URLs are shown without their password, whatever form the password takes."""

from __future__ import annotations

import pytest

from session_contracts.redaction import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+asyncpg://sessions:hunter2@127.0.0.1:55432/sessions",
            "postgresql+asyncpg://sessions:***@127.0.0.1:55432/sessions",
        ),
        # percent-encoded: neither the encoded nor the decoded form may appear
        (
            "postgresql+asyncpg://app:hun%40ter%2F2@db.internal/sessions",
            "postgresql+asyncpg://app:***@db.internal/sessions",
        ),
        # a password passed as a query parameter (the driver's connect argument)
        (
            "postgresql+asyncpg://app@db/sessions?password=hunter2&ssl=require",
            "postgresql+asyncpg://app@db/sessions?password=%2A%2A%2A&ssl=require",
        ),
        # a port SQLAlchemy cannot read: everything between scheme and host is dropped
        ("postgresql://app:hunter2@db:notaport/sessions", "postgresql://***@db:notaport/sessions"),
    ],
)
def test_the_password_is_hidden(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "hunter2" not in redact_url(url) and "hun%40ter" not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///./.state/sessions.db",
        "sqlite+aiosqlite:////var/lib/session control/sessions.db",
        "postgresql+asyncpg://sessions@127.0.0.1:55432/sessions",
        "not a url at all",
    ],
)
def test_a_url_without_a_password_is_shown_as_given(url: str) -> None:
    assert redact_url(url) == url
