"""Settings of the auth gateway library, read from `SESSIONS_GATEWAY_*` environment variables.

A service instance serving one tenant names it in `gateway_tenant_id`: every request is that
tenant's, activity events carry it, and the gateway keeps only that tenant's revocations. A
service serving many tenants leaves it unset and passes a tenant resolver to
`SessionGateway.from_settings` (a callable, so not a setting).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork, StringConstraints, field_validator, model_validator

from session_contracts.links import followable_url
from session_contracts.models import TenantId
from session_contracts.settings import KafkaSettings

HeaderName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
]
CookieName = HeaderName
QueryName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~-]+$")
]
"""A query parameter name of URL-unreserved characters: it appears in a query string as itself
unless percent-encoded."""
Path = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^/")]

DEFAULT_HEADER = "X-Session-Id"
MAX_EVICTION_GRACE_SECONDS = 3600
"""An hour: hosts under NTP differ by well under a second, so a longer grace is a mistake, not
skew, and would keep every ended revocation that much longer in memory."""


class GatewaySettings(KafkaSettings):
    """Everything `SessionGateway.from_settings` needs (env `SESSIONS_GATEWAY_<FIELD>`)."""

    kafka_client_id: str = Field(
        default="session-gateway", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$"
    )

    gateway_tenant_id: TenantId | None = Field(
        default=None,
        description="The one tenant this service instance serves (SESSIONS_GATEWAY_TENANT_ID); "
        "unset when the service passes a tenant resolver to SessionGateway.from_settings.",
    )
    gateway_cookie_name: CookieName = Field(
        default="sid", description="Cookie holding the session id of browsers."
    )
    gateway_header_name: HeaderName = Field(
        default=DEFAULT_HEADER,
        description="Header holding the session id of mobile and API clients.",
    )
    gateway_header_scheme: HeaderName | None = Field(
        default=None,
        description="The authentication scheme the session header's value starts with "
        "(`Bearer`, with the header name `Authorization`): the value is `<scheme> <id>`, the "
        "scheme compared case-insensitively. Unset: the whole value is the id. Required when "
        "the header is Authorization or Proxy-Authorization.",
    )
    gateway_query_param: QueryName | None = Field(
        default=None,
        description="A query parameter that also carries the session id (`access_token`, for "
        "a browser's WebSocket, which cannot set a header); every value of it is checked. "
        "Unset: the query string is not read.",
    )
    gateway_subprotocol_marker: HeaderName | None = Field(
        default=None,
        description="A WebSocket subprotocol after which a handshake offers its session id "
        '(`access_token`: `new WebSocket(url, ["access_token", id])`, for a browser, which '
        "cannot set a header); the app accepts with the marker, never the id. Unset: "
        "subprotocols are not read as a session.",
    )
    gateway_sign_in_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] = Field(
        default="/signin", description="Where browser navigations of a revoked session are sent."
    )
    gateway_exempt_paths: list[Path] = Field(
        default_factory=lambda: ["/healthz", "/readyz", "/static/"],
        description="Paths never checked (a trailing / exempts the whole prefix); the sign-in "
        "URL is always exempt when it is a local path.",
    )
    gateway_max_cookie_bytes: int = Field(
        default=32_768,
        ge=4_096,
        le=1_048_576,
        description="Cookie headers of a request longer than this in all are refused with 431 "
        "before they are parsed (a server without a header limit let 64 MiB through: seconds "
        "of the event loop's time per request).",
    )
    gateway_fail_open: bool = Field(
        default=False,
        description="Admit traffic the gateway cannot verify (before the revocations topic "
        "has been read up to its end, or while it is stale), logged as a warning; the "
        "default refuses it with 503.",
    )
    gateway_max_staleness_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Past this many seconds without confirming it has read the revocations "
        "topic up to its end, the gateway is stale: requests with a session get 503 (or are "
        "admitted with a warning, fail-open) and readiness says not ready.",
    )
    gateway_trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed "
        "(a JSON list). The client address of a request from one of them is the right-most "
        "X-Forwarded-For address that is not itself trusted; of any other request, the peer.",
    )
    gateway_activity_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="At most one session.activity per session per interval.",
    )
    gateway_activity_flush_seconds: float = Field(
        default=0.5, gt=0, le=60, description="How often pending activity events are sent."
    )
    gateway_activity_max_tracked: int = Field(
        default=100_000, ge=1, description="Bound of the per-session debounce map."
    )
    gateway_activity_max_pending: int = Field(
        default=50_000, ge=1, description="Bound of unsent activity events (oldest dropped)."
    )
    gateway_partitions_check_seconds: float = Field(
        default=30.0,
        ge=0.5,
        le=3600,
        description="How often the revocations consumer refreshes the topic's metadata: "
        "partitions added to the topic are followed (from their beginning) within this.",
    )
    gateway_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Revocations consumer long-poll: the broker answers as soon as a record "
        "arrives, so this bounds only how often an idle gateway confirms it is current.",
    )
    gateway_eviction_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        le=MAX_EVICTION_GRACE_SECONDS,
        allow_inf_nan=False,
        description="Revocations stay this long past valid_until, for clock skew between hosts "
        "(0 to 3600, finite); a tombstone removes one only after it too. Infinity, accepted "
        "before 2026-12-06, made every revocation's expiry NaN: none was kept.",
    )

    @field_validator("gateway_exempt_paths")
    @classmethod
    def _exempt_paths_leave_something_checked(cls, paths: list[str]) -> list[str]:
        return checked_exempt_paths(paths)

    @field_validator("gateway_sign_in_url")
    @classmethod
    def _sign_in_leaves_the_home_page_checked(cls, url: str) -> str:
        return checked_sign_in_url(url)

    @model_validator(mode="after")
    def _an_authorization_header_has_a_scheme(self) -> GatewaySettings:
        checked_header_scheme(self.gateway_header_name, self.gateway_header_scheme)
        return self

    @model_validator(mode="after")
    def _staleness_outlasts_a_fetch(self) -> GatewaySettings:
        # An idle gateway confirms it is current once per fetch wait; a bound shorter than
        # two of them would make a healthy gateway stale.
        if self.gateway_max_staleness_seconds * 1000 < 2 * self.gateway_fetch_max_wait_ms:
            raise ValueError(
                "gateway_max_staleness_seconds must be at least twice gateway_fetch_max_wait_ms"
            )
        return self


def checked_exempt_paths(paths: list[str]) -> list[str]:
    """`paths`, unless one exempts every path: then ValueError (the settings refuse it, and the
    middleware again, for settings changed with `model_copy`, which validates nothing)."""
    # "/" is a prefix of every request path: the gateway would check nothing, silently.
    if "/" in paths:
        raise ValueError(
            '"/" exempts every path (an entry ending in / exempts its prefix), so the gateway '
            "would check nothing; list only the paths to leave unchecked"
        )
    return paths


def checked_sign_in_url(url: str) -> str:
    """`url`, unless it could not be what the gateway exempts and redirects to: then
    ValueError. Checked by the settings, and again by the middleware.

    - The local path `/`: the sign-in page is exempt from the check (a revoked session is sent
      there), and `/` would leave the home page unchecked, silently (a review as an attacker,
      stop 66).
    - What no page should follow (`session_contracts.links.followable_url`): a space, a
      control or a non-ASCII character; a scheme-relative URL (`//host/x`), an open redirect;
      another scheme than http or https (`javascript:`), or none on a URL that is not a path.
    - A fragment (`/signin#x`): `?ended=` would be appended after it, and the path exempted
      would never equal a request's.
    - A `%` in a local path: the exemption compares the request's decoded path, which would
      never equal it, so the sign-in page would be checked too (a review, stop 67).
    """
    followable_url(url, "the sign-in URL")
    parts = urlsplit(url)
    if url.startswith("/") and parts.path == "/":  # what the middleware exempts
        raise ValueError(
            "the sign-in URL's path is /, and the sign-in page is left unchecked, so the home "
            "page would be too: give the sign-in page a path of its own (e.g. /signin)"
        )
    if parts.fragment or "#" in url:
        raise ValueError(f"the sign-in URL {url!r} has a fragment: ?ended= would follow it")
    if url.startswith("/") and "%" in parts.path:
        raise ValueError(
            f"the sign-in URL {url!r} has a percent-encoded path: the request's decoded path "
            "never equals it, so the sign-in page would not be exempt; write it decoded"
        )
    return url


_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")  # an RFC 9110 token
_QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]{1,64}")
SCHEMED_HEADERS = frozenset({"authorization", "proxy-authorization"})
"""Headers whose value is `<scheme> <credentials>` (RFC 9110, 11.6)."""


def checked_header_scheme(header_name: str, scheme: str | None) -> str | None:
    """`scheme`, unless it is no auth-scheme token, or the session header is one the gateway
    reads for another purpose (Cookie, Accept), or an Authorization header without a scheme:
    then ValueError (the settings refuse it, and the middleware again, for settings changed
    with `model_copy`, which validates nothing). Read as a whole, `Bearer <id>` is no
    well-formed id (it has a space): the gateway would take it for no session and pass it, and
    the app would read the id. An empty scheme would make no header a session."""
    if _TOKEN.fullmatch(header_name) is None:
        raise ValueError(f"the session header {header_name!r} is no header name")
    if header_name.lower() in ("cookie", "accept"):
        raise ValueError(
            f"the session header cannot be {header_name}: the gateway reads it as itself"
        )
    if scheme is not None and (_TOKEN.fullmatch(scheme) is None or len(scheme) < 3):
        raise ValueError(
            f"the session header's scheme {scheme!r} is no auth-scheme token of 3 or more "
            "characters (a shorter one is found in most values, which are then refused)"
        )
    if scheme is not None and header_name.lower() == DEFAULT_HEADER.lower():
        raise ValueError(
            f"a scheme is set and the session header is still {DEFAULT_HEADER}: set "
            "SESSIONS_GATEWAY_HEADER_NAME too (e.g. Authorization), or Authorization: "
            f"{scheme} <id> is never read"
        )
    if scheme is None and header_name.lower() in SCHEMED_HEADERS:
        raise ValueError(
            f"the session header {header_name} holds `<scheme> <id>`: set "
            "SESSIONS_GATEWAY_HEADER_SCHEME (e.g. Bearer), or the gateway reads `Bearer <id>` "
            "as a malformed id, which passes as no session while the app reads the id"
        )
    return scheme


def checked_subprotocol_marker(marker: str | None) -> str | None:
    """`marker`, unless it is no token (RFC 6455 subprotocols are tokens): then ValueError
    (checked by the settings' type, and again by the middleware, for `model_copy`)."""
    if marker is not None and _TOKEN.fullmatch(marker) is None:
        raise ValueError(f"the session subprotocol marker {marker!r} is no token")
    return marker


def checked_query_param(name: str | None) -> str | None:
    """`name`, unless it is not 1-64 URL-unreserved characters: then ValueError (checked by
    the settings' type, and again by the middleware, as above). The gateway finds the name in a
    query string as itself or percent-encoded; a name with a space (`+`) or `&` would not be."""
    if name is not None and _QUERY_NAME.fullmatch(name) is None:
        raise ValueError(f"the session query parameter {name!r} is not 1-64 of [A-Za-z0-9._~-]")
    return name
