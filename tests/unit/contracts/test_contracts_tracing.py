"""Tracing is off unless configured; the trace context round-trips through stored headers."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from session_contracts.tracing import (
    TracingSettings,
    configure_tracing,
    decode_headers,
    encode_headers,
    extract_context,
    inject_headers,
    tracer,
)


def test_off_by_default_nothing_is_installed_or_propagated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SESSIONS_OTLP_ENDPOINT", raising=False)
    assert TracingSettings().otlp_endpoint is None
    assert configure_tracing("test") is None
    with tracer().start_as_current_span("outside any configured provider"):
        pass
    assert inject_headers() == []  # no span context: no header on any record


def test_the_endpoint_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_OTLP_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert TracingSettings().otlp_endpoint == "http://127.0.0.1:4318/v1/traces"


def test_headers_survive_the_outbox_column() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [("traceparent", parent.encode()), ("tracestate", b"k=v")]
    assert decode_headers(encode_headers(headers)) == headers
    assert encode_headers([]) is None and decode_headers(None) == []
    span = trace.get_current_span(extract_context(headers))
    assert f"{span.get_span_context().trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
