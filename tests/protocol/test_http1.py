"""The client's plain-HTTP transport against raw sockets: keep-alive reuse, stale connections, framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from protocol.client import MinerClient, MinerTarget, QueryErrorCode
from protocol.synapses import CapabilitiesResponse

_CAPABILITIES = (
    CapabilitiesResponse(model="m", weights_sha256="0" * 64, engine="e", context_length=2048, version="1")
    .model_dump_json()
    .encode()
)

Answer = Callable[[int, int], bytes | None]
"""``(connection_index, request_index_on_that_connection)`` -> raw response bytes, or None to hang up."""


def _framed(body: bytes, *, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra
    return head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body


async def _read_request(reader: asyncio.StreamReader) -> bool:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
    await reader.readexactly(length)
    return True


@pytest.fixture
async def raw_server(miner_hotkey: str) -> AsyncIterator[Callable[[Answer], Any]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> tuple[MinerTarget, list[int]]:
        connections: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            index = len(connections)
            connections.append(0)
            try:
                while await _read_request(reader):
                    response = answer(index, connections[index])
                    connections[index] += 1
                    if response is None:
                        return
                    writer.write(response)
                    await writer.drain()
                    if b"connection: close" in response:
                        return
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return MinerTarget("127.0.0.1", server.sockets[0].getsockname()[1], miner_hotkey), connections

    yield start
    for server in servers:
        server.close()


async def test_sequential_requests_reuse_one_connection(raw_server: Any, client: MinerClient) -> None:
    target, connections = await raw_server(lambda conn, req: _framed(_CAPABILITIES))
    for _ in range(5):
        result = await client.capabilities(target, timeout_s=5)
        assert result.ok, result.message
    assert connections == [5]


async def test_a_connection_the_server_dropped_is_replaced_transparently(raw_server: Any, client: MinerClient) -> None:
    # The server answers once per connection, then hangs up on the next request without answering:
    # the idle-timeout race a keep-alive client must survive.
    target, connections = await raw_server(lambda conn, req: _framed(_CAPABILITIES) if req == 0 else None)
    for _ in range(3):
        result = await client.capabilities(target, timeout_s=5)
        assert result.ok, result.message
    assert len(connections) == 3


async def test_connection_close_and_unframed_bodies_are_read_to_the_end(raw_server: Any, client: MinerClient) -> None:
    unframed = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n" + _CAPABILITIES
    target, connections = await raw_server(lambda conn, req: unframed if req == 0 else None)
    for _ in range(2):
        result = await client.capabilities(target, timeout_s=5)
        assert result.ok, result.message
    assert connections == [1, 1]


async def test_chunked_bodies_with_extensions_and_trailers_decode(raw_server: Any, client: MinerClient) -> None:
    half = len(_CAPABILITIES) // 2
    parts = (_CAPABILITIES[:half], _CAPABILITIES[half:])
    chunked = b"".join(f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n" for part in parts)
    response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked + b"0\r\nx-trailer: 1\r\n\r\n"
    target, connections = await raw_server(lambda conn, req: response)
    for _ in range(2):
        result = await client.capabilities(target, timeout_s=5)
        assert result.ok, result.message
    assert connections == [2]


@pytest.mark.parametrize(
    "response",
    [
        b"NOT-HTTP 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\ncontent-length: 11\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 100\r\n\r\nshort",
    ],
    ids=["status-line", "two-lengths", "chunk-size", "truncated"],
)
async def test_broken_framing_is_a_transport_failure(raw_server: Any, client: MinerClient, response: bytes) -> None:
    target, _ = await raw_server(lambda conn, req: response)
    result = await client.capabilities(target, timeout_s=5)
    assert result.error is QueryErrorCode.TRANSPORT, result.message


async def test_a_declared_oversized_body_is_refused_before_reading(raw_server: Any, client: MinerClient) -> None:
    huge = b"HTTP/1.1 200 OK\r\ncontent-length: 999999999\r\n\r\n" + b"x" * 1024
    target, _ = await raw_server(lambda conn, req: huge)
    result = await client.capabilities(target, timeout_s=5)
    assert result.error is QueryErrorCode.OVERSIZED
