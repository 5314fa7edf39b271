"""aiokafka logs each request and response at DEBUG, SASL ones too: a PLAIN password, an
OAUTHBEARER token, a SCRAM exchange. `SESSIONS_LOG_LEVEL=DEBUG` wrote them to the log (a
review, stop 70); the project's clients now log such a message by its name only."""

from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path

import pytest
from aiokafka.protocol import admin

from session_contracts.kafka_clients import connection_failure
from session_contracts.logs import RepeatFilter
from session_contracts.settings import KafkaSettings

PASSWORD = "S3cr3t-Kafka-Passw0rd"
TOKEN = "eyJhbGciOi.OAUTH-BEARER-TOKEN.sig"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A listener speaking just enough Kafka for a client's SASL exchange: ApiVersions,
    SaslHandshake, and a SaslAuthenticate refused."""
    try:
        while True:
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            data = await reader.readexactly(size)
            api_key, _, correlation = struct.unpack(">hhi", data[:8])
            if api_key == 18:
                body = admin.ApiVersionResponse_v0(0, [(17, 0, 1), (36, 0, 0), (3, 0, 1)])
            elif api_key == 17:
                body = admin.SaslHandShakeResponse_v0(0, ["PLAIN", "OAUTHBEARER", "SCRAM-SHA-512"])
            elif api_key == 36:
                body = admin.SaslAuthenticateResponse_v0(58, "Authentication failed", b"")
            else:
                break
            message = struct.pack(">i", correlation) + body.encode()
            writer.write(struct.pack(">i", len(message)) + message)
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    writer.close()


async def test_no_sasl_secret_reaches_a_debug_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    caplog.set_level(logging.DEBUG, logger="aiokafka.conn")
    # a service's `quiet_kafka_reconnects` (another test's, in this process) passes one
    # "Request to ..." line a format string per 30 s: the SASL ones would not be logged at all
    conn = logging.getLogger("aiokafka.conn")
    monkeypatch.setattr(
        conn, "filters", [f for f in conn.filters if not isinstance(f, RepeatFilter)]
    )
    token = tmp_path / "token"
    token.write_text(TOKEN)
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for mechanism, credentials in (
            ("PLAIN", {"kafka_sasl_username": "registry", "kafka_sasl_password": PASSWORD}),
            ("SCRAM-SHA-512", {"kafka_sasl_username": "registry", "kafka_sasl_password": PASSWORD}),
            ("OAUTHBEARER", {"kafka_sasl_oauth_token_file": token}),
        ):
            kafka = KafkaSettings(
                kafka_bootstrap_servers=f"127.0.0.1:{port}",
                kafka_security_protocol="SASL_PLAINTEXT",
                kafka_sasl_mechanism=mechanism,
                **credentials,
            )
            assert await connection_failure(kafka)  # refused, after the exchange
    finally:
        server.close()
        await server.wait_closed()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SaslAuthenticationFailed" in logged  # an error's name is not taken for a request
    assert "SaslAuthenticateRequest_v0: not logged, it carries credentials" in logged
    assert PASSWORD not in logged and TOKEN not in logged and "registry\x00" not in logged
