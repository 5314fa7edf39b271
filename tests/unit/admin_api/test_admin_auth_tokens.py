"""Token verification: HS256 keys, RS256/ES256 through a JWKS, the claims and times we need,
and settings that are production-safe unless development is asked for."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from admin_api.auth import (
    EDIT_USER_SESSIONS,
    MAX_TOKEN_CHARS,
    InvalidToken,
    TokenVerifier,
    issue_dev_token,
)
from admin_api.settings import DEV_JWT_SECRET, AdminApiSettings

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def settings(**values: Any) -> AdminApiSettings:
    """Development unless `environment` says otherwise (the default itself is production)."""
    base = {"database_url": "sqlite+aiosqlite:///:memory:", "environment": "development"}
    return AdminApiSettings(_env_file=None, **{**base, **values})


STRONG = "k" * 40
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "jwt_secret": STRONG,
    "jwt_issuer": "https://idp",
}


@pytest.fixture
def no_sessions_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the environment: what a service started without configuration sees."""
    import os

    for name in list(os.environ):
        if name.startswith("SESSIONS_"):
            monkeypatch.delenv(name)


JWKS_FETCHES: list[str] = []
"""One entry per request the test JWKS server answered."""


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))
    body = json.dumps(
        {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig"},
                {**ec_jwk, "kid": "ec-1", "use": "sig"},
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            JWKS_FETCHES.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "admin-1",
        "tenant": "acme",
        "grants": [EDIT_USER_SESSIONS],
        "aud": "session-control",
        "exp": now + 300,
    }
    return {**base, **overrides}


async def test_dev_token_round_trip() -> None:
    config = settings()
    admin = await TokenVerifier(config).verify(issue_dev_token(config, "a", "acme", ["x"]))
    assert (admin.user_id, admin.tenant_id, admin.grants) == ("a", "acme", frozenset({"x"}))


async def test_a_token_past_the_bound_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Megabytes of token reached PyJWT's decoding on the event loop before any check (a
    server without a header limit passes them); over 16 KiB it is refused unread."""
    config = settings()
    good = issue_dev_token(config, "a", "acme", ["x"])
    read: list[int] = []
    real = jwt.get_unverified_header

    def counting(token: str) -> dict[str, Any]:
        read.append(len(token))
        return real(token)

    monkeypatch.setattr(jwt, "get_unverified_header", counting)
    verifier = TokenVerifier(config)
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "x": "y" * 3_000_000}).encode())
    for huge in (good + "A" * MAX_TOKEN_CHARS, header.decode() + ".e30.sig"):
        with pytest.raises(InvalidToken, match=f"at most {MAX_TOKEN_CHARS} characters"):
            await verifier.verify(huge)
    assert read == []  # neither was parsed
    assert (await verifier.verify(good)).tenant_id == "acme" and read == [len(good)]


async def test_rs256_and_es256_through_the_jwks(jwks_url: str) -> None:
    verifier = TokenVerifier(
        settings(environment="production", jwks_url=jwks_url, jwt_issuer="https://idp")
    )
    rs = jwt.encode(claims(iss="https://idp"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(claims(iss="https://idp"), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await verifier.verify(rs)).tenant_id == "acme"
    assert (await verifier.verify(es)).may(EDIT_USER_SESSIONS)
    wrong_issuer = jwt.encode(
        claims(iss="https://evil"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        claims(iss="https://idp"), other_key, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    # production with only a JWKS: the development secret signs nothing
    hs = jwt.encode(claims(iss="https://idp"), DEV_JWT_SECRET, algorithm="HS256")
    for token in (wrong_issuer, forged, hs):
        with pytest.raises(InvalidToken):
            await verifier.verify(token)


async def test_the_public_key_as_an_hmac_secret_is_refused(jwks_url: str) -> None:
    """Algorithm confusion: an HS256 token signed with the RSA public key must not pass."""
    verifier = TokenVerifier(settings(jwks_url=jwks_url))
    from cryptography.hazmat.primitives import serialization

    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = b64(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": ""},
        {"sub": 7},
        {"tenant": None},
        {"tenant": "a b"},
        {"grants": "edit_user_sessions"},
        {"grants": [1]},
    ],
)
async def test_claims_of_the_wrong_shape_are_invalid(bad: dict[str, Any]) -> None:
    token = jwt.encode(claims(**bad), DEV_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        await TokenVerifier(settings()).verify(token)


def test_outside_development_the_default_or_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match=r"SESSIONS_JWKS_URL .* or SESSIONS_JWT_SECRET"):
        settings(environment="production", jwt_issuer="https://idp")
    with pytest.raises(ValueError, match="public development secret is refused"):
        settings(**{**PRODUCTION, "jwt_secret": DEV_JWT_SECRET})
    with pytest.raises(ValueError, match="at least 32 characters"):
        settings(**{**PRODUCTION, "jwt_secret": "short"})
    strong = settings(**PRODUCTION)
    assert strong.hs256_keys == (STRONG,)
    jwks_only = settings(environment="production", jwks_url="https://idp/jwks", jwt_issuer="i")
    assert jwks_only.hs256_keys == () and jwks_only.hs256_key is None
    with pytest.raises(ValueError, match="cannot be issued"):
        issue_dev_token(jwks_only, "a", "acme")


def test_in_production_the_keys_come_over_tls_and_a_blank_url_is_no_key() -> None:
    """Found by a review, stop 70: an http JWKS URL let whoever is on the path serve their own
    keys (any admin's token, any tenant), and an empty one passed for a key source, so the API
    started with none, refusing every token while ready."""
    jwks = {"environment": "production", "jwt_issuer": "i"}
    for url in ("http://idp.internal:8080/certs", "HTTP://10.0.0.5/jwks"):
        with pytest.raises(ValueError, match="SESSIONS_JWKS_URL must be https"):
            settings(**jwks, jwks_url=url)
    for url in (
        "https://idp/jwks",
        "http://127.0.0.1:9000/jwks",
        "http://[::1]/k",
        "http://localhost/k",
    ):
        assert settings(**jwks, jwks_url=url).jwks_url == url
    for blank in ("", "   "):
        with pytest.raises(ValueError, match=r"set SESSIONS_JWKS_URL .* or SESSIONS_JWT_SECRET"):
            settings(**jwks, jwks_url=blank)
        assert settings(jwks_url=blank).jwks_url is None  # development: unset
    assert settings(jwks_url="http://idp.internal/jwks").jwks_url  # development allows http


@pytest.mark.usefixtures("no_sessions_env")
def test_without_an_environment_the_service_is_production_and_says_what_to_set() -> None:
    with pytest.raises(ValueError) as refused:
        AdminApiSettings(_env_file=None)
    message = str(refused.value)
    assert "SESSIONS_ENVIRONMENT=production (the default)" in message
    for variable in ("SESSIONS_JWKS_URL", "SESSIONS_JWT_SECRET", "SESSIONS_JWT_ISSUER"):
        assert variable in message
    assert "set SESSIONS_ENVIRONMENT=development" in message
    with pytest.raises(ValueError, match="public development secret is refused"):
        AdminApiSettings(_env_file=None, jwt_secret=DEV_JWT_SECRET, jwt_issuer="https://idp")


@pytest.mark.usefixtures("no_sessions_env")
async def test_without_an_environment_a_token_signed_with_the_development_secret_is_refused() -> (
    None
):
    config = AdminApiSettings(_env_file=None, jwt_secret=STRONG, jwt_issuer="https://idp")
    assert config.environment == "production"
    verifier = TokenVerifier(config)
    forged = jwt.encode(claims(iss="https://idp"), DEV_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="Signature"):
        await verifier.verify(forged)
    own = jwt.encode(claims(iss="https://idp"), STRONG, algorithm="HS256")
    assert (await verifier.verify(own)).tenant_id == "acme"


async def test_with_a_jwks_the_development_secret_is_refused_even_in_development(
    jwks_url: str,
) -> None:
    config = settings(environment="development", jwks_url=jwks_url)
    assert config.hs256_keys == ()
    forged = jwt.encode(claims(), DEV_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="not accepted"):
        await TokenVerifier(config).verify(forged)
    with pytest.raises(ValueError, match="public development secret is refused"):
        settings(environment="development", jwks_url=jwks_url, jwt_secret=DEV_JWT_SECRET)
    # a key of one's own still works beside the JWKS in development
    own = settings(environment="development", jwks_url=jwks_url, jwt_secret=STRONG)
    token = jwt.encode(claims(), STRONG, algorithm="HS256")
    assert (await TokenVerifier(own).verify(token)).user_id == "admin-1"


async def test_production_requires_an_issuer_and_every_token_must_carry_it() -> None:
    with pytest.raises(ValueError, match="set SESSIONS_JWT_ISSUER"):
        settings(environment="production", jwt_secret=STRONG)
    verifier = TokenVerifier(settings(**PRODUCTION))
    for bad, refusal in (({}, 'missing the "iss" claim'), ({"iss": "https://evil"}, "issuer")):
        with pytest.raises(InvalidToken, match=refusal):
            await verifier.verify(jwt.encode(claims(**bad), STRONG, algorithm="HS256"))


MAX = 24 * 3600


@pytest.mark.parametrize(
    "times",
    [
        pytest.param(lambda now: {"exp": 2**62}, id="exp 2^62 without iat"),
        pytest.param(lambda now: {"exp": 2**62, "iat": now}, id="exp 2^62 with iat"),
        pytest.param(lambda now: {"exp": now + MAX + 1, "iat": now}, id="one second too long"),
        pytest.param(
            lambda now: {"exp": now + 3600, "iat": now - MAX}, id="issued long ago, still valid"
        ),
        pytest.param(lambda now: {"exp": now + MAX + 600}, id="no iat, exp too far"),
        pytest.param(lambda now: {"exp": float(now + 10 * MAX)}, id="float exp too far"),
    ],
)
async def test_a_token_meant_to_live_longer_than_the_maximum_is_refused(times: Any) -> None:
    verifier = TokenVerifier(settings())
    token = jwt.encode(claims(**times(int(time.time()))), DEV_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="longer than the 86400 s allowed"):
        await verifier.verify(token)


async def test_tokens_within_the_maximum_lifetime_pass_and_the_maximum_is_configurable() -> None:
    now = int(time.time())
    verifier = TokenVerifier(settings())
    for times in ({"exp": now + MAX, "iat": now}, {"exp": now + MAX}, {"exp": now + 60.5}):
        token = jwt.encode(claims(**times), DEV_JWT_SECRET, algorithm="HS256")
        assert (await verifier.verify(token)).tenant_id == "acme", times
    short = settings(jwt_max_lifetime_seconds=600)
    token = jwt.encode(claims(exp=now + 900, iat=now), DEV_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="600 s"):
        await TokenVerifier(short).verify(token)
    with pytest.raises(ValueError, match="ttl: 900 s is longer than jwt_max_lifetime_seconds"):
        issue_dev_token(short, "a", "acme", ttl=900)


@pytest.mark.parametrize(
    ("times", "refusal"),
    [
        pytest.param(lambda now: {"exp": str(now + 300)}, "claim 'exp' must be a number", id="exp"),
        pytest.param(lambda now: {"nbf": str(now)}, "claim 'nbf' must be a number", id="nbf"),
        pytest.param(lambda now: {"iat": str(now)}, "claim 'iat' must be a number", id="iat"),
        pytest.param(lambda now: {"iat": [now]}, "must be an integer", id="iat as a list"),
        pytest.param(lambda now: {"exp": True}, "expired", id="exp as a boolean"),
    ],
)
async def test_time_claims_must_be_numbers(times: Any, refusal: str) -> None:
    token = jwt.encode(claims(**times(int(time.time()))), DEV_JWT_SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match=refusal):
        await TokenVerifier(settings()).verify(token)


async def test_hs256_keys_rotate_every_listed_key_verifies_the_first_signs() -> None:
    new, old = "n" * 40, "o" * 40
    rotating = settings(**{**PRODUCTION, "jwt_secret": None, "jwt_secrets": f"{new}, {old}"})
    assert rotating.hs256_keys == (new, old)
    verifier = TokenVerifier(rotating)
    for key in (new, old):
        token = jwt.encode(claims(iss="https://idp"), key, algorithm="HS256")
        assert (await verifier.verify(token)).tenant_id == "acme"
    issued = issue_dev_token(rotating, "a", "acme")
    assert jwt.decode(issued, new, algorithms=["HS256"], audience="session-control")["sub"] == "a"
    retired = jwt.encode(claims(iss="https://idp"), "r" * 40, algorithm="HS256")
    with pytest.raises(InvalidToken, match="Signature"):
        await verifier.verify(retired)
    # a valid signature of an older key still gets every other check
    expired = jwt.encode(claims(iss="https://idp", exp=int(time.time()) - 600), old, "HS256")
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(expired)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"jwt_secret": "a" * 40, "jwt_secrets": "b" * 40}, "not both"),
        ({"jwt_secret": None, "jwt_secrets": f"{'a' * 40},,{'b' * 40}"}, "key 2 is empty"),
        ({"jwt_secret": None, "jwt_secrets": f"{'a' * 40},{'a' * 40}"}, "listed twice"),
        ({"jwt_secret": None, "jwt_secrets": f"{'a' * 40},short"}, r"too short: key 2\)"),
        (
            {"jwt_secret": None, "jwt_secrets": f"{'a' * 40},{DEV_JWT_SECRET}"},
            "public development secret",
        ),
    ],
)
def test_bad_key_lists_are_refused_naming_the_problem(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        settings(**{**PRODUCTION, **values})


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once_per_cooldown(jwks_url: str) -> None:
    verifier = TokenVerifier(
        settings(jwks_url=jwks_url, jwks_refresh_cooldown_seconds=3600, jwks_cache_seconds=3600)
    )
    JWKS_FETCHES.clear()
    good = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    assert (await verifier.verify(good)).tenant_id == "acme"
    for _ in range(25):
        made_up = {"kid": uuid.uuid4().hex}
        token = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers=made_up)
        with pytest.raises(InvalidToken):
            await verifier.verify(token)
    assert (await verifier.verify(good)).tenant_id == "acme"
    assert len(JWKS_FETCHES) == 1, JWKS_FETCHES


async def test_dev_token_ttl_as_seconds_or_timedelta() -> None:
    config = settings()
    for ttl in (120, timedelta(minutes=2)):
        claims = jwt.decode(
            issue_dev_token(config, "a", "acme", ttl=ttl),
            DEV_JWT_SECRET,
            algorithms=["HS256"],
            audience="session-control",
        )
        assert claims["exp"] - claims["nbf"] == 120


class _Clock:
    """`time.time` as `admin_api.auth` reads it, moved by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr("admin_api.auth.time.time", lambda: self.now)


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature and claims were checked (PyJWT's `decode`)."""
    checked: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr("admin_api.auth.jwt.decode", counting)
    return checked


async def test_a_verified_token_is_taken_again_for_thirty_seconds_never_past_its_exp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = settings(jwt_leeway_seconds=0)
    verifier = TokenVerifier(config)
    clock = _Clock(monkeypatch)
    checked = _decodes(monkeypatch)
    token = jwt.encode(claims(exp=int(clock.now) + 45), DEV_JWT_SECRET, algorithm="HS256")
    assert (await verifier.verify(token)).tenant_id == "acme"
    clock.now += 29
    assert (await verifier.verify(token)).tenant_id == "acme"
    assert len(checked) == 1  # taken again, not checked again
    clock.now += 2  # past thirty seconds: checked again
    await verifier.verify(token)
    assert len(checked) == 2
    clock.now += 15  # past its exp, within thirty seconds of the second check: checked again
    await verifier.verify(token)  # (PyJWT's own clock, not moved, still finds it unexpired)
    assert len(checked) == 3


async def test_no_other_string_is_answered_from_the_verified_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kept token answers for itself only: a byte changed anywhere, another tenant's claims
    with its signature, or the token with something appended, is checked and refused."""
    verifier = TokenVerifier(settings())
    token = jwt.encode(claims(), DEV_JWT_SECRET, algorithm="HS256")
    await verifier.verify(token)
    header, payload, signature = token.split(".")
    other = jwt.encode(claims(tenant="other"), "x" * 40, algorithm="HS256").split(".")[1]
    forged = [
        f"{header}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}"
        + signature[-1],
        f"{header}.{other}.{signature}",
        token + "A",
        token.lower(),
    ]
    for bad in forged:
        with pytest.raises(InvalidToken):
            await verifier.verify(bad)
    assert (await verifier.verify(token)).tenant_id == "acme"
