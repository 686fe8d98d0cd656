"""Network failures are told apart, with the host, and bounded by what retrying can change.

Real sockets, no mocks: the aiohttp transport maps every connection error to
`httpx.ConnectTimeout`, so only a real refused port, DNS name, TLS handshake and silent
server show whether the connector reports what actually happened.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import ClassVar

import httpx
import pytest

from connector.http import RetryPolicy, UpstreamClient, UpstreamError
from sandbox.server import free_port

PATIENT = RetryPolicy(max_attempts=6, budget_s=5.0, initial_backoff_s=0.01, max_backoff_s=0.02)


class Plain(UpstreamClient):
    service = "upstream"
    default_timeout = httpx.Timeout(0.5)
    auth_failure_statuses: ClassVar[frozenset[int]] = frozenset({401})


async def failure(url: str) -> tuple[UpstreamError, int]:
    client = Plain(None, PATIENT)
    try:
        with pytest.raises(UpstreamError) as raised:
            await client.send("GET", url, auth=False)
        return raised.value, client.requests
    finally:
        await client.aclose()


async def test_a_refused_connection_names_the_host_and_is_retried_once() -> None:
    port = free_port()  # nothing listens there

    error, attempts = await failure(f"http://127.0.0.1:{port}/x")

    assert str(error) == f"upstream: connection refused by 127.0.0.1:{port}"
    assert error.kind == "connection_refused" and error.transient
    assert attempts == 2  # not six: a closed port answers the same a moment later


async def test_a_dns_failure_is_not_a_timeout() -> None:
    error, attempts = await failure("http://no-such-host.invalid/x")  # RFC 6761: never resolves

    assert error.kind == "dns"
    assert "DNS lookup failed for no-such-host.invalid" in str(error)
    assert attempts == 1


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers; a TLS client gets a plain-text reply."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(1)
        if first == b"\x16":  # a TLS ClientHello: answer in plain HTTP, as a wrong port would
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        await asyncio.sleep(30)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, family=socket.AF_INET)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()


async def test_a_tls_failure_is_named(silent_server: int) -> None:
    error, attempts = await failure(f"https://127.0.0.1:{silent_server}/x")

    assert error.kind == "tls"
    assert f"TLS handshake failed with 127.0.0.1:{silent_server}" in str(error)
    assert attempts == 1


async def test_a_timeout_is_a_timeout_and_is_retried(silent_server: int) -> None:
    client = Plain(None, RetryPolicy(max_attempts=2, budget_s=5.0, initial_backoff_s=0.01))
    try:
        with pytest.raises(UpstreamError) as raised:
            await client.send("GET", f"http://127.0.0.1:{silent_server}/x", auth=False)
    finally:
        await client.aclose()

    assert raised.value.kind == "timeout"
    assert f"timed out waiting for 127.0.0.1:{silent_server}" in str(raised.value)
    assert client.requests == 2
