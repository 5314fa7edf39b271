"""A token whose `alg` does not fit the JWKS key its `kid` names is a 401, not a 500
(2026-12-06): PyJWT read an RSA key for an ES256 header as an EC key (or the reverse) and
raised TypeError before checking any signature, with no credential needed."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import jwt
import pytest
from admin_api_support import NOW, RecordingBus, make_settings
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from admin_api.app import create_app
from admin_api.auth import EDIT_USER_SESSIONS
from admin_api.settings import AdminApiSettings
from asgi_served import served

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
P384_KEY = ec.generate_private_key(ec.SECP384R1())
LIST = "/api/v1/sessions"


def _jwk(algorithm: type[RSAAlgorithm] | type[ECAlgorithm], key: Any, **fields: str) -> Any:
    return {**json.loads(algorithm.to_jwk(key.public_key())), "use": "sig", **fields}


KEY_SET = {
    "keys": [
        _jwk(RSAAlgorithm, RSA_KEY, kid="rsa"),
        _jwk(ECAlgorithm, EC_KEY, kid="ec"),
        _jwk(RSAAlgorithm, RSA_KEY, kid="rsa-for-rs384", alg="RS384"),
        _jwk(ECAlgorithm, P384_KEY, kid="p-384"),
        {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "kid": "oct", "alg": "HS256"},
    ]
}


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    """An identity provider's base URL: `/jwks.json` the key set, `/broken` not JSON."""
    bodies = {"/jwks.json": json.dumps(KEY_SET).encode(), "/broken": b"<html>oops"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(bodies[self.path])

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def settings(db_url: str, idp: str) -> AdminApiSettings:
    """Tokens through the JWKS alone."""
    return make_settings(db_url, jwks_url=f"{idp}/jwks.json")


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "admin-1",
        "tenant": "acme",
        "grants": [EDIT_USER_SESSIONS],
        "aud": "session-control",
        "iat": now,
        "exp": now + 300,
    }


def _unsigned(header: dict[str, Any]) -> str:
    """A token with this header and a signature of nothing: no credential at all."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(_claims())}.AAAA"


MISFITS = [
    ("ES256", "rsa", "kty RSA, alg RS256"),
    ("RS256", "ec", "kty EC, alg ES256"),
    ("RS256", "rsa-for-rs384", "kty RSA, alg RS384"),  # the JWK's own alg
    ("ES256", "p-384", "kty EC, alg ES384"),
    ("RS256", "oct", "kty oct, alg HS256"),
    ("ES256", "oct", "kty oct, alg HS256"),
]


@pytest.mark.parametrize(("alg", "kid", "key"), MISFITS, ids=[f"{a} {k}" for a, k, _ in MISFITS])
async def test_a_token_whose_alg_does_not_fit_its_kids_key_is_401(
    client: httpx.AsyncClient, alg: str, kid: str, key: str
) -> None:
    headers = {"Authorization": f"Bearer {_unsigned({'alg': alg, 'kid': kid})}"}
    response = await client.get(LIST, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == (
        f"invalid token: signing algorithm {alg} does not fit the key its kid names ({key})"
    )


async def test_signed_rs256_and_es256_tokens_still_pass(client: httpx.AsyncClient) -> None:
    for key, alg, kid in ((RSA_KEY, "RS256", "rsa"), (EC_KEY, "ES256", "ec")):
        token = jwt.encode(_claims(), key, algorithm=alg, headers={"kid": kid})
        response = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (alg, response.text)
    # the same RSA key, signing, under the kid whose JWK says RS384: refused by its own alg
    token = jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-for-rs384"})
    response = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_a_kid_json_cannot_carry_is_401_in_words_it_can(client: httpx.AsyncClient) -> None:
    """PyJWT quotes the unknown kid in its error; a lone surrogate there made the 401's body
    unrenderable (a 500)."""
    token = _unsigned({"alg": "RS256", "kid": "\ud800\n"})
    response = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"].endswith('matches: "\\ud800\\n"')


async def test_a_key_set_that_is_not_json_is_401_not_500(db_url: str, idp: str) -> None:
    """PyJWT wraps a JWKS it cannot fetch, not one it cannot parse (a ValueError)."""
    app = create_app(
        make_settings(db_url, jwks_url=f"{idp}/broken"), bus=RecordingBus(), clock=lambda: NOW
    )
    token = jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa"})
    async with served(app) as client:
        response = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "key set (JWKS)" in response.json()["detail"]
