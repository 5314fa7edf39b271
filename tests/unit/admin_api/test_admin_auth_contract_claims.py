"""The verifier reads `sub` and `tenant` by the contract's own rules (`UserId`, `TenantId`):
what a command would refuse is refused with the token, not met later as a 500 (2026-12-06)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from admin_api.auth import InvalidToken, TokenVerifier
from admin_api.settings import DEV_JWT_SECRET, AdminApiSettings


def _token(**claims: Any) -> str:
    now = int(time.time())
    base = {"sub": "admin-1", "tenant": "acme", "aud": "session-control", "exp": now + 300}
    return jwt.encode({**base, **claims}, DEV_JWT_SECRET, algorithm="HS256")


def _verifier() -> TokenVerifier:
    return TokenVerifier(
        AdminApiSettings(
            _env_file=None,
            database_url="sqlite+aiosqlite:///:memory:",
            environment="development",
        )
    )


REFUSED = [
    ({"tenant": "acme\n"}, "claim 'tenant'"),  # `^...$` in Python's re took it
    ({"tenant": "a" * 65}, "claim 'tenant'"),
    ({"tenant": "\uff41cme"}, "claim 'tenant'"),
    ({"sub": "a\x7fb"}, "claim 'sub'"),
    ({"sub": "a\nb"}, "claim 'sub'"),
    ({"sub": "\x1b[31m"}, "claim 'sub'"),
    ({"sub": "a\ud800"}, "claim 'sub'"),  # no UTF-8 for it: the command could not be sent
    ({"sub": "x" * 129}, "claim 'sub'"),
    # the contract takes these; shown, they make one admin's id look like another's in the
    # audit and `ended_by` (a review, stop 71)
    ({"sub": "admin-1\u0085"}, "claim 'sub'"),  # NEXT LINE, a C1 control
    ({"sub": "adm\u200bin-1"}, "claim 'sub'"),  # ZERO WIDTH SPACE
    ({"sub": "\u202e1-nimda"}, "claim 'sub'"),  # RIGHT-TO-LEFT OVERRIDE
    ({"sub": "admin-1\u2028"}, "claim 'sub'"),  # LINE SEPARATOR
    # and what a review of the fix found drawn as nothing or as a plain space
    ({"sub": "admin-1\u034f"}, "claim 'sub'"),  # COMBINING GRAPHEME JOINER
    ({"sub": "admin-1\ufe00"}, "claim 'sub'"),  # VARIATION SELECTOR-1
    ({"sub": "admin-1\U000e0100"}, "claim 'sub'"),  # VARIATION SELECTOR-17
    ({"sub": "\u115fadmin-1"}, "claim 'sub'"),  # HANGUL CHOSEONG FILLER
    ({"sub": "admin-1\u3164"}, "claim 'sub'"),  # HANGUL FILLER
    ({"sub": "admin-1\u17b4"}, "claim 'sub'"),  # KHMER VOWEL INHERENT AQ
    ({"sub": "admin-1\u00a0"}, "claim 'sub'"),  # NO-BREAK SPACE
    ({"sub": "admin-1\u2800"}, "claim 'sub'"),  # BRAILLE PATTERN BLANK
    ({"sub": "admin-1 "}, "claim 'sub'"),
    ({"sub": " admin-1"}, "claim 'sub'"),
    ({"sub": "admin-1\ue000"}, "claim 'sub'"),  # private use
    ({"sub": "admin-1\U000effff"}, "claim 'sub'"),  # unassigned
]


@pytest.mark.parametrize(("claims", "claim"), REFUSED, ids=[repr(c) for c, _ in REFUSED])
async def test_a_claim_the_contract_refuses_refuses_the_token(
    claims: dict[str, str], claim: str
) -> None:
    with pytest.raises(InvalidToken, match=f"^{claim} must be a .* \\(the contract's"):
        await _verifier().verify(_token(**claims))


async def test_the_longest_claims_the_contract_takes_pass() -> None:
    sub, tenant = "é" * 125 + "\u0430 \u05d0", "A-z.0_9" * 9 + "a"  # shown: Cyrillic, Hebrew
    admin = await _verifier().verify(_token(sub=sub, tenant=tenant))
    assert (admin.user_id, admin.tenant_id) == (sub, tenant)
