"""`SESSIONS_GATEWAY_EXEMPT_PATHS` may leave paths unchecked, never every path (review of
2026-12-06: `["/"]` passed the `^/` pattern and, as a prefix of every path, turned the gateway
off without a word)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from auth_gateway import GatewaySettings, SessionGateway


@pytest.mark.parametrize("paths", ['["/"]', '["/healthz", "/", "/static/"]'])
def test_an_exempt_prefix_of_every_path_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, paths: str
) -> None:
    monkeypatch.setenv("SESSIONS_GATEWAY_EXEMPT_PATHS", paths)
    with pytest.raises(ValidationError, match="gateway_exempt_paths") as refused:
        GatewaySettings(gateway_tenant_id="acme")
    assert "exempts every path" in str(refused.value)


def test_prefixes_and_exact_paths_are_still_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_GATEWAY_EXEMPT_PATHS", '["/healthz", "/public/", "//"]')
    settings = GatewaySettings(gateway_tenant_id="acme")
    assert settings.gateway_exempt_paths == ["/healthz", "/public/", "//"]


def test_the_middleware_refuses_it_too_from_settings_copied_without_validation() -> None:
    """`model_copy(update=...)` validates nothing (the demo service adds its paths this way)."""
    settings = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme")
    everything = settings.model_copy(update={"gateway_exempt_paths": ["/healthz", "/"]})
    gateway = SessionGateway.from_settings(everything)
    with pytest.raises(ValueError, match="exempts every path"):
        gateway.wrap(Starlette())


@pytest.mark.parametrize("url", ["/", "/?from=gateway"])
def test_a_sign_in_url_of_slash_is_refused_it_would_leave_the_home_page_unchecked(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sign-in page is exempt from the check; a single-page app signing in at `/` left its
    home page unchecked, silently (a review as an attacker, stop 66)."""
    monkeypatch.setenv("SESSIONS_GATEWAY_SIGN_IN_URL", url)
    with pytest.raises(ValueError, match="sign-in URL's path is /"):
        GatewaySettings(gateway_tenant_id="acme")
    monkeypatch.delenv("SESSIONS_GATEWAY_SIGN_IN_URL")
    settings = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme")
    copied = settings.model_copy(update={"gateway_sign_in_url": url})
    with pytest.raises(ValueError, match="sign-in URL's path is /"):
        SessionGateway.from_settings(copied).wrap(Starlette())


@pytest.mark.parametrize("url", ["/signin", "/login?next=/", "https://id.example.com/"])
def test_other_sign_in_urls_are_accepted(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_GATEWAY_SIGN_IN_URL", url)
    assert GatewaySettings(gateway_tenant_id="acme").gateway_sign_in_url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("//evil.example/signin", "scheme-relative"),  # an open redirect (a review, stop 67)
        ("/\\evil.example/signin", "scheme-relative"),  # browsers read \\ as /
        ("javascript:alert(1)", "neither a local path"),
        ("ftp://id.example.com/", "neither a local path"),
        ("https:/id.example.com", "neither a local path"),  # no host
        ("/signin#top", "fragment"),  # ?ended= would follow the fragment
        ("/sign%20in", "percent-encoded"),  # never equal to a request's decoded path
        ("/signin\r\nSet-Cookie: x=1", "control"),
        ("/sign in", "space"),
    ],
)
def test_a_sign_in_url_that_is_no_plain_local_path_or_http_url_is_refused(
    url: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sign-in URL is the `Location` of every refused navigation and, as a local path,
    exempt from the check: each of these sent browsers elsewhere or left it checked."""
    with pytest.raises(ValueError, match=why):
        GatewaySettings(gateway_tenant_id="acme", gateway_sign_in_url=url)
    settings = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme")
    copied = settings.model_copy(update={"gateway_sign_in_url": url})
    with pytest.raises(ValueError, match=why):
        SessionGateway.from_settings(copied).wrap(Starlette())
