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
