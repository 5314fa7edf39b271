"""A session carried under an authentication scheme (`Authorization: Bearer <id>`) or in a
query parameter (`?access_token=<id>`) is checked as one in the cookie is.

Before stop 67 the gateway read only the session cookie and a header holding the bare id: a
service whose mobile clients send `Authorization: Bearer <id>`, or whose browser WebSockets
send `?access_token=<id>`, had its revoked sessions admitted (a review as an attacker). Set to
`Authorization`, the header was read as the id `Bearer <id>`, malformed (a space), so as no
session at all, while the app read the id. Now the scheme is a setting, an Authorization header
without one is refused at start, and the query parameter is a setting."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from revoked_sessions import FAR, OTHER, STOLEN, current_gateway, key
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message

from auth_gateway import GatewaySettings, SessionGateway
from auth_gateway.credentials import (
    MALFORMED,
    MAX_CANDIDATES,
    NOTHING,
    Presented,
    QueryParameter,
    SchemeHeader,
)
from session_contracts.handles import session_handle

BEARER: dict[str, Any] = {"gateway_header_name": "Authorization", "gateway_header_scheme": "Bearer"}
QUERY: dict[str, Any] = {"gateway_query_param": "access_token"}


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "credential": getattr(request.state, "session_credential", None),
            "handle": getattr(request.state, "session_handle", None),
        }
    )


def client_for(gateway: SessionGateway, revoked: str | None = STOLEN) -> httpx.AsyncClient:
    if revoked is not None:
        gateway.table.add(key(revoked), FAR)
    app = Starlette(routes=[Route("/{path:path}", whoami)])
    gateway.install(app, manage_lifespan=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {STOLEN}",
        f"bearer {STOLEN}",  # the scheme is case-insensitive (RFC 9110), as FastAPI reads it
        f"BEARER   {STOLEN}  ",
        f"Bearer Bea{STOLEN}",  # header.lstrip("Bearer ") strips letters, not a prefix
        f"Token {STOLEN}",  # another scheme: an app taking the second word reads the id
        f"x Token {STOLEN}",  # ... or the last one
        STOLEN,  # no scheme: header.removeprefix("Bearer ") reads the whole value
        f"{STOLEN} x",  # ... and header.split()[0]
        "Token\u2003" + STOLEN,  # an app decoding the raw header as UTF-8 splits at U+2003
        f"Bearer {STOLEN}ra",  # header.strip("Bearer "), rstrip: letters from the end too
        f"Bearer Be{STOLEN}a",
        f"{STOLEN}r",  # no scheme: header.strip("Bearer ") of a bare value
    ],
)
async def test_a_revoked_bearer_session_is_refused(authorization: str) -> None:
    async with client_for(current_gateway(**BEARER)) as client:
        response = await client.get("/me", headers=[(b"authorization", authorization.encode())])
    assert response.status_code == 401 and response.json() == {"error": "session_revoked"}


@pytest.mark.parametrize(
    ("revoked", "authorization"),
    [  # a bare value an app strips with one spelling of the scheme's letters (the review)
        ("Ab12-stolen", "eAb12-stolen"),  # strip/lstrip("Bearer ") leave the "A"
        ("stolen-12bA", "stolen-12bAe"),  # rstrip("Bearer ") leaves the "A"
        ("Ab-stolen-bA", "rAb-stolen-bAe"),
        # whitespace after a run stops the strip; `.strip("Bearer ").strip()` then reads the
        # id (the property found it in a full run, stop 68), in latin-1 and in UTF-8 text
        ("x-stolen", "B\tx-stolenB"),
        ("x-stolen", "B\x85x-stolenB"),
        ("x-stolen", "B\u2003x-stolenB"),
    ],
)
async def test_a_bare_value_an_app_strips_the_scheme_from_is_looked_up(
    revoked: str, authorization: str
) -> None:
    gateway = current_gateway(**BEARER)
    gateway.table.add(key(revoked), FAR)
    async with client_for(gateway, revoked=None) as client:
        response = await client.get("/me", headers=[(b"authorization", spelled(authorization, ""))])
    assert response.status_code == 401


MALFORMED_BEARERS = {  # how each spells the id; what some app reads the id from it with
    "tab": "Bearer\t{id}",  # header.split()[1]
    "trailing word": "Bearer {id} trailing",  # header.split()[1]
    "two ids": "Bearer x {id}",  # header.split()[-1]
    "no space": "Bearer{id}",  # header.removeprefix("Bearer").strip()
    "colon": "Bearer:{id}",  # if header.startswith("Bearer"): header[7:]
    "underscore": "Bearer_{id}",
    "scheme inside a word": "{head}Bearer {tail}",  # header.replace("Bearer ", "")
    "scheme in the id": "Bearer Bearer{id}",  # header.replace("Bearer", "").strip()
    "scheme at the id's end": "Bearer x{id}bearer",  # header.split("Bearer")[1].strip()...
    "comma": "Bearer {id},",  # re.match(r"Bearer\s+([\w-]+)", header)
    "dot": "Bearer {id}.x",  # the same regex: token68 allows the dot
    "slash": "Bearer {id}/",
    "padding": "Bearer {id}==",  # header[7:].rstrip("=")
    "semicolon": "Bearer {id};x",
    "quotes": 'Bearer "{id}"',  # .strip('"')
    "scheme after a word": "x Bearer {id},",  # re.search(r"Bearer\s+([\w-]+)", header)
    "no-break space": "Bearer \xa0{id}",  # FastAPI strips the no-break space: it reads the id
    "UTF-8 space": "Bearer\u2003{id}",  # an app decoding the raw header as UTF-8
    "a letter past the bound": "Bearer " + "b" * 9 + "{id}",  # lstrip("Bearer ") of 9 letters
}


def spelled(template: str, credential: str) -> bytes:
    text = template.format(id=credential, head=credential[:1], tail=credential[1:])
    return text.encode("latin-1") if "\u2003" not in text else text.encode()


@pytest.mark.parametrize("template", MALFORMED_BEARERS.values(), ids=MALFORMED_BEARERS.keys())
async def test_a_value_of_the_scheme_not_well_formed_is_refused(template: str) -> None:
    """No list of an app's readings can be complete, so a value containing the scheme is held
    to its one spelling, the id in base64url: each of these passed a first version while an
    app read the id (two reviews, stop 67). Refused whoever's session it names."""
    gateway = current_gateway(**BEARER)
    async with client_for(gateway) as client:
        for credential in (STOLEN, OTHER):
            response = await client.get(
                "/me", headers=[(b"authorization", spelled(template, credential))]
            )
            assert response.status_code == 400, credential
            assert response.json() == {"error": "malformed_credential"}
    assert gateway.refused["malformed_credential"] == 2


async def test_a_live_bearer_session_is_handed_to_the_app_and_other_schemes_pass_as_none() -> None:
    gateway = current_gateway(**BEARER)
    async with client_for(gateway) as client:
        live = await client.get("/me", headers={"authorization": f"Bearer  {OTHER} "})
        basic = await client.get("/me", headers={"authorization": "Basic dXNlcjpwYXNz"})
        alone = await client.get("/me", headers={"authorization": "Bearer "})
        too_long = await client.get("/me", headers={"authorization": "Bearer " + "a" * 129})
        gateway.watcher.current_until = -math.inf  # stale: a session cannot be vouched for
        stale = await client.get("/me", headers={"authorization": f"Bearer {OTHER}"})
        stale_basic = await client.get("/me", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert live.status_code == 200
    # the handle of the id the app reads, not of a reading with the leading "a" stripped
    assert live.json() == {"credential": OTHER, "handle": session_handle("acme", OTHER)}
    assert too_long.status_code == 400  # no contract id, and an app would read it
    for signed_out in (basic, alone):  # no session
        assert signed_out.status_code == 200
        assert signed_out.json() == {"credential": None, "handle": None}
    assert stale.status_code == 503 and stale.json() == {"error": "gateway_stale"}
    assert stale_basic.status_code == 200  # no session: nothing to vouch for


async def test_a_bearer_session_without_a_tenant_is_not_vouched_for() -> None:
    settings = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", **BEARER, **QUERY)
    gateway = SessionGateway.from_settings(settings, tenant_resolver=lambda scope: None)
    gateway.watcher.mark_current()
    async with client_for(gateway, revoked=None) as client:
        bearer = await client.get("/me", headers={"authorization": f"Bearer {OTHER}"})
        basic = await client.get("/me", headers={"authorization": "Basic dXNlcjpwYXNz"})
        query = await client.get("/me", params={"access_token": OTHER})
        blank = await client.get("/me", params={"access_token": "", "v": "1"})
    for refused in (bearer, query):
        assert refused.status_code == 401 and refused.json() == {"error": "tenant_unknown"}
    assert basic.status_code == 200 and blank.status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        [("access_token", STOLEN)],
        [("access_token", OTHER), ("access_token", STOLEN)],  # query_params.getlist()[-1]
        [("access_token", STOLEN), ("access_token", OTHER)],  # the first, or getlist()[0]
        [("v", "1"), ("access_token", f"Bea{STOLEN}")],  # lstrip("Bearer ") of a scheme's
        [("access_token", f"{STOLEN}rea")],  # strip("Bearer ")
    ],
)
async def test_a_revoked_session_in_the_query_is_refused(params: list[tuple[str, Any]]) -> None:
    async with client_for(current_gateway(**BEARER, **QUERY)) as client:
        response = await client.get("/me", params=params, headers={"accept": "text/html"})
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    assert "set-cookie" not in response.headers  # no cookie to clear


@pytest.mark.parametrize(
    ("query", "status"),
    [
        (b"%61ccess_token=" + STOLEN.encode(), 401),  # the name percent-encoded: Starlette
        (b"access%5Ftoken=" + STOLEN.encode(), 401),  # decodes it
        (b"x=" + b"&" * 100_000 + b"access_token=" + STOLEN.encode(), 401),  # far along
        # not the id as is: refused, since some reading (parse_qsl, unquote, strip, UTF-8,
        # removeprefix("Bearer "), strip('"')) gives the id
        (b"access_token=" + STOLEN.replace("-", "%2D").encode(), 400),
        (b"access_token=+" + STOLEN.encode() + b"+", 400),  # + is a space, stripped
        (b"access_token=%2573" + STOLEN[1:].encode(), 400),  # unquote(query_params[...])
        (b"access_token=\xe2\x80\x83" + STOLEN.encode(), 400),  # the raw query as UTF-8
        (b"access_token=Bearer+" + STOLEN.encode(), 400),
        (b"access_token=%22" + STOLEN.encode() + b"%22", 400),
        (b"access_token=BearerX" + STOLEN.encode(), 400),  # the scheme in it
        (b"access_token=" + b"x" * 129, 400),  # no contract id
    ],
)
async def test_a_session_spelled_otherwise_in_the_query_is_refused(
    query: bytes, status: int
) -> None:
    gateway = current_gateway(**BEARER, **QUERY)
    gateway.table.add(key(STOLEN), FAR)
    answered: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        answered.append(message)

    scope = {  # straight through ASGI: an HTTP client would encode the query its own way
        "type": "http",
        "method": "GET",
        "path": "/me",
        "query_string": query,
        "headers": [],
        "client": ("127.0.0.1", 5000),
    }
    await gateway.wrap(Starlette(routes=[Route("/me", whoami)]), manage_lifespan=False)(
        scope, receive, send
    )
    assert answered[0]["status"] == status


@pytest.mark.parametrize(
    ("headers", "query", "read"),
    [
        ([(b"authorization", b"Bearer a-third")], b"access_token=" + OTHER.encode(), "a-third"),
        ([(b"x-session-id", b"a-third")], b"access_token=" + OTHER.encode(), OTHER),  # unread
        ([(b"cookie", b"sid=a-third")], b"access_token=" + OTHER.encode(), OTHER),
        (
            [(b"cookie", b"sid=a-third")],
            b"access_token=Bearx&access_token=&access_token=Rabc",
            "Rabc",
        ),
        (
            [(b"cookie", b"sid=a-third")],
            b"access_token=Rabc&access_token=",
            "a-third",
        ),  # blank last
        ([(b"authorization", b"Bearer  Raexyz ")], b"access_token=Rabc", "Raexyz"),
        ([(b"authorization", b"Basic x"), (b"authorization", b"Bearer ABc")], b"", None),
    ],
)
async def test_the_credential_the_app_reads_is_the_header_then_the_query_then_the_cookie(
    headers: list[tuple[bytes, bytes]], query: bytes, read: str | None
) -> None:
    """The header's id (the first header, as `request.headers.get` reads it), else the
    parameter's last value, else the cookie's; and its handle is of that id, not of one of the
    readings looked up besides (`Raexyz` is looked up as `aexyz`, `exyz`, ... too)."""
    gateway = current_gateway(**BEARER, **QUERY)
    async with client_for(gateway) as client:
        response = await client.get(httpx.URL("/me", query=query), headers=headers)
    expected = session_handle("acme", read) if read is not None else None
    assert response.json() == {"credential": read, "handle": expected}


async def test_more_session_headers_or_parameter_values_than_are_looked_up_are_refused() -> None:
    """Each reading costs a hash: a request of 50,000 session headers held the event loop for
    seconds (a review, stop 67)."""
    gateway = current_gateway(**BEARER, **QUERY)
    plain = current_gateway()
    too_many = MAX_CANDIDATES + 1
    async with client_for(gateway) as client, client_for(plain, revoked=None) as other:
        headers = await client.get(
            "/me", headers=[(b"authorization", f"Token t{n}".encode()) for n in range(too_many)]
        )
        same = await client.get("/me", headers=[(b"authorization", b"Token t")] * too_many)
        query = await client.get("/me", params=[("access_token", f"t{n}") for n in range(too_many)])
        plain_headers = await other.get(
            "/me", headers=[(b"x-session-id", f"t{n}".encode()) for n in range(too_many)]
        )
        within = await client.get(
            "/me",
            headers=[(b"authorization", f"Token t{n}".encode()) for n in range(too_many - 1)],
            params=[("access_token", f"t{n}") for n in range(too_many - 1)],
        )
    for response in (headers, same, query, plain_headers):
        assert response.status_code == 400
        assert response.json() == {"error": "too_many_credentials"}
    assert within.status_code == 200
    assert gateway.refused["too_many_credentials"] == 3
    assert plain.refused["too_many_credentials"] == 1


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"gateway_header_name": "Authorization"}, "SESSIONS_GATEWAY_HEADER_SCHEME"),
        ({"gateway_header_name": "proxy-authorization"}, "SESSIONS_GATEWAY_HEADER_SCHEME"),
        ({"gateway_header_name": "Cookie"}, "reads it as itself"),
        ({"gateway_header_name": "accept"}, "reads it as itself"),
        ({**BEARER, "gateway_header_scheme": ""}, "no auth-scheme token"),
        ({**BEARER, "gateway_header_scheme": "Bearer x"}, "no auth-scheme token"),
        ({"gateway_query_param": "access token"}, "not 1-64 of"),
        ({"gateway_query_param": "a&b"}, "not 1-64 of"),
        ({"gateway_header_scheme": "Bearer"}, "still X-Session-Id"),  # the name forgotten
        ({**BEARER, "gateway_header_scheme": "Be"}, "3 or more"),
        ({"gateway_header_name": "Authorization ", "gateway_header_scheme": "Bearer"}, "no header"),
        ({"gateway_subprotocol_marker": "access token"}, "no token"),
        ({"gateway_subprotocol_marker": ""}, "no token"),
    ],
)
def test_settings_that_would_leave_a_credential_unread_are_refused_at_start(
    settings: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme", **settings)
    # settings changed with model_copy are not validated: the middleware checks again
    valid = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme")
    copied = valid.model_copy(update=settings)
    with pytest.raises(ValueError, match=error):
        SessionGateway.from_settings(copied).wrap(Starlette())


@pytest.mark.parametrize("query", [b"access_token", b"v=1&access_token=", b"x=%41"])
def test_a_query_without_a_value_of_the_parameter_presents_nothing(query: bytes) -> None:
    assert not QueryParameter("access_token").read(query).present


def test_a_scheme_header_presents_a_session_only_under_its_scheme() -> None:
    reader = SchemeHeader("Bearer")
    assert reader.read(b"Bearer xyz") == Presented((b"xyz",), "xyz", True)
    basic = reader.read(b"Basic abc")
    # its words, and what strip("Bearer ") and lstrip leave of it (an app ignoring the scheme)
    assert set(basic.candidates) == {b"Basic abc", b"Basic", b"abc", b"asic abc", b"sic abc"}
    assert basic.session_id is None and not basic.present
    assert reader.read(b"Bearer") == reader.read(b"Bearer   ") == NOTHING
    assert reader.read(b"Bearer a b") is MALFORMED
    # lstrip("Bearer ") strips any of those letters: each suffix is looked up, the id first
    assert reader.read(b"Bearer Raebc") == Presented(
        (b"Raebc", b"aebc", b"ebc", b"bc", b"c"), "Raebc", True
    )
    assert reader.read(b"Bearer " + b"R" * 9 + b"c") is MALFORMED
    # and from either end: strip("Bearer "), rstrip
    assert reader.read(b"Bearer Bxyzar") == Presented(
        (b"Bxyzar", b"Bxyza", b"Bxyz", b"xyzar", b"xyza", b"xyz"), "Bxyzar", True
    )
    assert reader.read(b"Bearer Bxyzaaaaaaar") is MALFORMED  # 9 letters at the ends
    # "ß" is "ss" to .upper() and .casefold(): the scheme Session, spelled otherwise
    assert SchemeHeader("Session").read("Seßion xyz".encode("latin-1")) is MALFORMED
    assert SchemeHeader("Session").read("Seßion xyz".encode()) is MALFORMED  # as UTF-8
    # other letters an app's case comparison turns into the scheme's (a fifth review)
    assert SchemeHeader("Token").read("To\u212aen xyz".encode()) is MALFORMED  # Kelvin sign
    assert SchemeHeader("Session").read("Se\u017fsion xyz".encode()) is MALFORMED  # long s
    assert SchemeHeader("Session").read("Sess\u0131on xyz".encode()) is MALFORMED  # dotless i
    assert SchemeHeader("Session").read(b"Basic xyz").present is False
    assert reader.read(b"Bearer " + b"x" * 129) is MALFORMED


def fastapi_reading_bearer_and_query() -> FastAPI:
    """An app reading the session as FastAPI's security and query parameters do."""
    app = FastAPI()

    @app.get("/me")
    async def me(
        bearer: HTTPAuthorizationCredentials | None = Depends(HTTPBearer(auto_error=False)),
        access_token: str | None = Query(default=None),
    ) -> dict[str, str | None]:
        return {"bearer": bearer.credentials if bearer else None, "query": access_token}

    return app


async def test_a_fastapi_app_never_reads_a_revoked_session_the_gateway_admitted() -> None:
    gateway = current_gateway(**BEARER, **QUERY)
    gateway.table.add(key(STOLEN), FAR)
    app = fastapi_reading_bearer_and_query()
    gateway.install(app, manage_lifespan=False)
    bare = fastapi_reading_bearer_and_query()
    transport = httpx.ASGITransport(app=app)
    asks = [
        {"headers": {"authorization": f"bEaReR {STOLEN}"}},
        {"headers": {"authorization": f"Bearer   {STOLEN}\t"}},
        {"headers": [(b"authorization", f"Bearer \xa0{STOLEN}".encode("latin-1"))]},
        {"params": {"access_token": STOLEN}},
        {"params": [("access_token", OTHER), ("access_token", STOLEN)]},
        {"headers": {"authorization": f"Bearer {OTHER}"}, "params": {"access_token": STOLEN}},
    ]
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://svc") as gated,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://svc") as alone,
    ):
        for ask in asks:
            read = (await alone.get("/me", **ask)).json()  # type: ignore[arg-type]
            assert STOLEN in read.values(), ask  # the app alone would serve the stolen session
            status = (await gated.get("/me", **ask)).status_code  # type: ignore[arg-type]
            assert status in (400, 401), ask


async def test_the_readings_of_one_request_are_bounded() -> None:
    """16 headers without the scheme, each with runs of its letters at both ends, were 1,328
    hashes, 11 ms a request (a fifth review); past 128 readings the request is refused."""
    gateway = current_gateway(**BEARER)
    value = "rBeAr eB" + "x" * 110 + "Be aRreB"
    async with client_for(gateway) as client:
        many = await client.get("/me", headers=[(b"authorization", value.encode())] * 16)
        one = await client.get("/me", headers={"authorization": value})
    assert many.status_code == 400 and many.json() == {"error": "too_many_credentials"}
    assert one.status_code == 200  # not a session, and within the bound
    reader = SchemeHeader("Bearer")
    assert len(reader.read(value.encode()).candidates) > 8
    assert value.encode() not in reader._cache  # so many readings are not kept


async def test_a_revocation_is_answered_before_a_malformed_credential() -> None:
    """A revoked cookie beside a malformed bearer: the browser is sent to sign in, its cookie
    cleared, as for the cookie alone (a fifth review: it was answered 400 first)."""
    gateway = current_gateway(**BEARER)
    async with client_for(gateway) as client:
        response = await client.get(
            "/me",
            headers={
                "cookie": f"sid={STOLEN}",
                "authorization": "Bearer x.y",
                "accept": "text/html",
            },
        )
    assert response.status_code == 303 and response.headers["set-cookie"].startswith("sid=;")
    assert gateway.refused["revoked"] == 1 and gateway.refused["malformed_credential"] == 0


async def test_a_value_without_the_scheme_too_long_to_read_is_refused() -> None:
    """Over 8 KiB a value without the scheme was not read, and passed on as no session:
    `Basic <padding> <revoked id>` reached an app taking the last word (a review, stop 70)."""
    gateway = current_gateway(**BEARER)
    gateway.table.add(key(STOLEN), FAR)
    padded = b"Basic " + b"p" * 8200 + b" " + STOLEN.encode()
    async with client_for(gateway, revoked=None) as client:
        response = await client.get("/me", headers=[(b"authorization", padded)])
        short = await client.get("/me", headers=[(b"authorization", b"Basic dXNlcjpwYXNz")])
    assert (response.status_code, response.json()) == (400, {"error": "malformed_credential"})
    assert short.status_code == 200  # another scheme's credential of a sensible size: passed
