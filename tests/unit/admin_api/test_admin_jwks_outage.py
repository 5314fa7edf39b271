"""The identity provider's key set (JWKS) while the provider fails or hangs: one fetch at a
time, at most one per cooldown, and an admin whose key is known never waits for one.

Found by a review (2026-12-06): PyJWT's client started its cooldown only after a fetch that
succeeded, and fetched under one lock, so each token naming a made-up `kid` made a fetch of its
own while the endpoint answered errors, and a real admin's request waited behind every fetch
that hung."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from admin_api.auth import InvalidToken, JwksKeys, TokenVerifier
from admin_api.settings import AdminApiSettings
from polling import until

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_SET = json.dumps(
    {"keys": [{**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "rsa-1"}]}
).encode()


@dataclass
class Idp:
    """A JWKS endpoint that answers the key set, 503, or holds each request until released."""

    url: str
    mode: str = "ok"
    fetches: int = 0
    held: int = 0
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def idp() -> Iterator[Idp]:
    state = Idp("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            if state.mode == "hang":
                state.held += 1
                state.release.wait(30)
            if state.mode == "503":
                self.send_response(503)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(KEY_SET)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}/jwks.json"
    yield state
    state.release.set()
    server.shutdown()


async def _now(value: bool) -> bool:
    return value


def token(kid: str) -> str:
    claims = {"sub": "admin-1", "tenant": "acme", "aud": "session-control", "exp": 2**40}
    return jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": kid})


async def test_made_up_kids_while_the_provider_answers_503_fetch_once_per_cooldown(
    idp: Idp,
) -> None:
    settings = AdminApiSettings(
        _env_file=None,
        database_url="sqlite+aiosqlite:///:memory:",
        environment="development",
        jwks_url=idp.url,
        jwks_refresh_cooldown_seconds=1,
        jwt_max_lifetime_seconds=30 * 86400,
    )
    verifier = TokenVerifier(settings)
    with pytest.raises(InvalidToken, match="longer than"):  # the key was found, and used
        await verifier.verify(token("rsa-1"))
    assert idp.fetches == 1
    idp.mode = "503"
    await asyncio.sleep(1.05)  # past the cooldown: one made-up kid may fetch again
    for _ in range(20):
        with pytest.raises(InvalidToken) as refused:
            await verifier.verify(token(uuid.uuid4().hex))
        assert "503" not in str(refused.value)  # the provider's answer is the operator's
    assert idp.fetches == 2


async def test_a_known_kid_never_waits_for_a_fetch_that_hangs(idp: Idp) -> None:
    now = [0.0]
    keys = JwksKeys(idp.url, lifespan=300, cooldown=30, clock=lambda: now[0])
    assert (await keys.key("rsa-1")).key_id == "rsa-1"
    idp.mode = "hang"
    now[0] = 30.0
    waiting = [asyncio.create_task(keys.key(uuid.uuid4().hex)) for _ in range(5)]
    await until(lambda: _now(idp.held > 0), 10, "the one fetch they share reached the provider")
    assert (await keys.key("rsa-1")).key_id == "rsa-1"  # while that fetch hangs
    assert (idp.fetches, idp.held, any(task.done() for task in waiting)) == (2, 1, False)
    idp.mode = "ok"
    idp.release.set()
    for task in waiting:
        with pytest.raises(InvalidToken, match="no signing key of the key set"):
            await task
    assert idp.fetches == 2


async def test_a_key_set_past_its_lifespan_is_never_used_and_refetched_once_per_cooldown(
    idp: Idp,
) -> None:
    """A key withdrawn from the JWKS is refused within the cache time even while the provider
    cannot be reached; meanwhile it is asked once per cooldown, not once per request."""
    now = [0.0]
    keys = JwksKeys(idp.url, lifespan=300, cooldown=30, clock=lambda: now[0])
    await keys.key("rsa-1")
    idp.mode = "503"
    now[0] = 200.0  # the second half of its lifespan: renewed in the background, nobody waits
    assert (await keys.key("rsa-1")).key_id == "rsa-1"
    await until(lambda: _now(idp.fetches == 2), 10, "the background fetch reached the provider")
    now[0] = 300.0
    for _ in range(5):
        with pytest.raises(InvalidToken, match="cannot be fetched now"):
            await keys.key("rsa-1")
    assert idp.fetches == 3
    idp.mode = "ok"
    now[0] = 329.0
    with pytest.raises(InvalidToken, match="cannot be fetched now"):
        await keys.key("rsa-1")
    now[0] = 330.0
    assert (await keys.key("rsa-1")).key_id == "rsa-1"
    assert idp.fetches == 4
