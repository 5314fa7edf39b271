"""Token verification: HS256 in development, RS256/ES256 through a JWKS, the claims we need."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from admin_api.auth import EDIT_USER_SESSIONS, InvalidToken, TokenVerifier, issue_dev_token
from admin_api.settings import DEV_JWT_SECRET, AdminApiSettings

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def settings(**values: Any) -> AdminApiSettings:
    return AdminApiSettings(**{"database_url": "sqlite+aiosqlite:///:memory:", **values})


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
    with pytest.raises(ValueError, match="jwt_secret"):
        settings(environment="production")
    with pytest.raises(ValueError, match="32 characters"):
        settings(environment="production", jwt_secret="short")
    strong = settings(environment="production", jwt_secret="k" * 40)
    assert strong.hs256_key == "k" * 40
    jwks_only = settings(environment="production", jwks_url="https://idp/jwks")
    assert jwks_only.hs256_key is None
    with pytest.raises(ValueError, match="cannot be issued"):
        issue_dev_token(jwks_only, "a", "acme")


async def test_dev_token_ttl_as_seconds_or_timedelta() -> None:
    from datetime import timedelta

    config = settings()
    for ttl in (120, timedelta(minutes=2)):
        claims = jwt.decode(
            issue_dev_token(config, "a", "acme", ttl=ttl),
            DEV_JWT_SECRET,
            algorithms=["HS256"],
            audience="session-control",
        )
        assert claims["exp"] - claims["nbf"] == 120
