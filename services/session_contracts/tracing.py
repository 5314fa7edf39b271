"""OpenTelemetry tracing of a termination: admin API, command, registry, revocation, gateway.

The trace context travels in Kafka record headers (W3C `traceparent`/`tracestate`, the
propagator's format): the admin API injects it into the command it publishes, the registry
extracts it to apply the command under a child span and stores the span's context with each
revocation in the outbox (`outbox.headers`), the relay publishes them as the revocation's
headers, and the gateway applies the revocation under a child span of that.

Off by default: without `configure_tracing` no SDK is installed and `tracing_on()` is false;
the registry and the gateway then start no span, attach no context and write no header (they
ask `tracing_on()` once per batch of commands; the gateway traces only records that carry a
context), so tracing off costs nothing per record and nothing per request.
`SESSIONS_OTLP_ENDPOINT` (e.g. `http://127.0.0.1:4318/v1/traces`) turns export on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Headers = Sequence[tuple[str, bytes]]
RecordHeaders = Sequence[tuple[str, bytes | None]]
"""A consumed record's headers: Kafka allows a header without a value (aiokafka reads it as
None)."""
TRACER = "session_control"


class TracingSettings(BaseSettings):
    """Where spans go (env `SESSIONS_OTLP_ENDPOINT`); unset: tracing stays off."""

    model_config = SettingsConfigDict(
        env_prefix="SESSIONS_",
        extra="ignore",
        hide_input_in_errors=True,  # a URL's userinfo
    )

    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); "
        "unset: no spans are recorded or exported.",
    )


def configure_tracing(
    service_name: str,
    settings: TracingSettings | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Install a tracer provider exporting to `exporter` or the settings' OTLP endpoint.

    Returns the provider, or None (tracing stays off) when neither is given. Call once per
    process, at start; tests pass an in-memory exporter.
    """
    if exporter is None:
        endpoint = (settings or TracingSettings()).otlp_endpoint
        if endpoint is None:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def tracing_on() -> bool:
    """Whether a tracer provider is installed (by `configure_tracing`, or by the host)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracer() -> trace.Tracer:
    """The tracer of Session Control (a no-op one while tracing is off)."""
    return trace.get_tracer(TRACER)


def inject_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka record headers (none while tracing is off)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


TRACE_HEADERS = ("traceparent", "tracestate")
"""The record headers a trace context travels in (W3C Trace Context)."""


def trace_headers(headers: RecordHeaders | None) -> list[tuple[str, bytes]]:
    """Those of a record's headers that carry its trace context. A header without a value
    carries none: `bytes(None)` raised on one, which stopped the registry folding the record's
    batch (a termination command) and made a gateway pass over a revocation."""
    return [
        (name, bytes(value))
        for name, value in headers or ()
        if name in TRACE_HEADERS and value is not None
    ]


def extract_context(headers: RecordHeaders | None) -> Context:
    """The trace context a record's headers carry (an empty one when they carry none)."""
    carrier = {name: value.decode("latin-1") for name, value in trace_headers(headers)}
    return propagate.extract(carrier)


def encode_headers(headers: Headers) -> bytes | None:
    """Headers as stored in a database column (None when there are none)."""
    if not headers:
        return None
    return json.dumps([[name, value.decode("latin-1")] for name, value in headers]).encode()


def decode_headers(stored: bytes | None) -> list[tuple[str, bytes]]:
    """What `encode_headers` stored, as Kafka record headers."""
    if not stored:
        return []
    return [(name, value.encode("latin-1")) for name, value in json.loads(bytes(stored))]
