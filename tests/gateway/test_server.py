"""GatewayServer: free-port binding, start errors, and graceful shutdown of in-flight streams."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from fastapi import FastAPI

from gateway import GatewayServer, GatewayStartError
from protocol.client import QueryErrorCode


async def test_stop_lets_an_in_flight_stream_finish_then_refuses_connections(
    start_gateway: Any, client: Any, kit: Any
) -> None:
    service = kit.FakeService(chunks=kit.make_chunks(4), delay_s=0.1)
    live = await start_gateway(service, grace_s=5.0)
    in_flight = asyncio.create_task(client.infer(live.target, kit.prompt(stream=True), timeout_s=10))
    await asyncio.wait_for(service.first_yielded.wait(), 5)
    await live.server.stop()
    result = await in_flight
    assert result.ok, result.message
    assert result.raise_for_failure().token_ids == [100, 101, 102, 103]
    assert service.finished == 1
    after = await client.infer(live.target, kit.prompt(), timeout_s=2)
    assert after.error is QueryErrorCode.CONNECT


async def test_stop_cancels_streams_that_outlive_the_grace_period(start_gateway: Any, client: Any, kit: Any) -> None:
    service = kit.FakeService(chunks=kit.make_chunks(3), gate=asyncio.Event())
    live = await start_gateway(service, grace_s=0.2)
    in_flight = asyncio.create_task(client.infer(live.target, kit.prompt(stream=True), timeout_s=10))
    await asyncio.wait_for(service.first_yielded.wait(), 5)
    await live.server.stop()
    result = await in_flight
    assert not result.ok
    assert service.closed_early == 1


async def test_binding_a_taken_port_is_a_start_error(kit: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = GatewayServer(object(), "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(GatewayStartError, match="cannot bind"):
            await server.start()


async def test_port_is_known_only_after_start() -> None:
    with pytest.raises(RuntimeError):
        _ = GatewayServer(object()).port


async def _idle_then_request(port: int, idle_s: float) -> bytes:
    """Send a request, idle ``idle_s`` on the same connection, send another; what the second got."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n"
    try:
        writer.write(request)
        first = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5)
        assert first.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(idle_s)
        writer.write(request)
        return await asyncio.wait_for(reader.read(4096), 5)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_idle_connections_stay_open_for_keep_alive_s() -> None:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    async with GatewayServer(app, "127.0.0.1", 0, keep_alive_s=3.0) as kept:
        assert (await _idle_then_request(kept.port, 1.5)).startswith(b"HTTP/1.1 200")
    async with GatewayServer(app, "127.0.0.1", 0, keep_alive_s=0.5) as closing:
        assert await _idle_then_request(closing.port, 1.5) == b""
