"""Rate, concurrency, in-flight and time limits; service failures; disconnects free the service."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway import BadRequest, GatewayConfig, Overloaded, PolicyConfig
from protocol.client import QueryErrorCode
from protocol.synapses import InferenceChunk


async def test_rate_limit_answers_429_with_retry_after(start_gateway: Any, client: Any, kit: Any) -> None:
    live = await start_gateway(policy_config=PolicyConfig(rate_per_s=0.01, burst=2))
    results = [await client.infer(live.target, kit.prompt(), timeout_s=5) for _ in range(3)]
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].status_code == 429 and "rate_limited" in results[2].message


async def test_concurrency_limit_per_hotkey(
    start_gateway: Any, client: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    gate = asyncio.Event()
    live = await start_gateway(
        kit.FakeService(chunks=kit.make_chunks(2), gate=gate),
        policy_config=PolicyConfig(max_concurrent_per_hotkey=1),
    )
    first = asyncio.create_task(client.infer(live.target, kit.prompt(stream=True), timeout_s=10))
    await asyncio.wait_for(live.service.first_yielded.wait(), 5)
    body = kit.prompt().model_dump_json().encode()
    headers = kit.signed_headers(validator_keypair, body, receiver_ss58=live.target.hotkey_ss58)
    second = await raw_http.post(f"{live.base_url}/Inference", content=body, headers=headers)
    assert second.status_code == 429
    assert second.json()["error"] == "too_many_concurrent"
    assert second.headers["retry-after"] == "1"
    gate.set()
    assert (await first).ok
    assert (await client.infer(live.target, kit.prompt(), timeout_s=5)).ok  # the slot was released


async def test_process_in_flight_cap_answers_503(start_gateway: Any, client: Any, kit: Any) -> None:
    gate = asyncio.Event()
    live = await start_gateway(
        kit.FakeService(chunks=kit.make_chunks(2), gate=gate), config=GatewayConfig(port=0, max_in_flight=1)
    )
    first = asyncio.create_task(client.infer(live.target, kit.prompt(stream=True), timeout_s=10))
    await asyncio.wait_for(live.service.first_yielded.wait(), 5)
    second = await client.infer(live.target, kit.prompt(), timeout_s=5)
    assert second.status_code == 503 and "overloaded" in second.message
    gate.set()
    assert (await first).ok


async def test_unary_deadline_answers_504(start_gateway: Any, client: Any, kit: Any) -> None:
    service = kit.FakeService(chunks=kit.make_chunks(3), delay_s=5)
    live = await start_gateway(service, config=GatewayConfig(port=0, request_timeout_s=0.3))
    result = await client.infer(live.target, kit.prompt(), timeout_s=5)
    assert result.status_code == 504 and "timeout" in result.message
    assert service.closed_early == 1  # the generation was stopped, not left running


async def test_stream_deadline_ends_with_an_error_line(start_gateway: Any, client: Any, kit: Any) -> None:
    service = kit.FakeService(chunks=kit.make_chunks(3), delay_s=5)
    live = await start_gateway(service, config=GatewayConfig(port=0, request_timeout_s=0.3))
    result = await client.infer(live.target, kit.prompt(stream=True), timeout_s=5)
    assert result.error is QueryErrorCode.STREAM_ERROR
    assert result.message.startswith("timeout:")
    assert [tokens for _, tokens in result.chunk_arrivals] == [1]
    assert service.closed_early == 1


async def test_service_errors_map_to_statuses(start_gateway: Any, client: Any, kit: Any) -> None:
    service = kit.FakeService(fail_with=BadRequest("prompt is 9000 tokens; the context holds 2048"))
    live = await start_gateway(service)
    result = await client.infer(live.target, kit.prompt(stream=True), timeout_s=5)
    assert result.status_code == 400 and "bad_request: prompt is 9000 tokens" in result.message

    service.fail_with = Overloaded("engine queue is full", retry_after_s=3)
    result = await client.infer(live.target, kit.prompt(), timeout_s=5)
    assert result.status_code == 503 and "overloaded: engine queue is full" in result.message


async def test_unexpected_service_bug_is_500_without_internals_and_serving_continues(
    start_gateway: Any, client: Any, kit: Any
) -> None:
    service = kit.FakeService(fail_with=kit.Boom("secret internal state /etc/passwd"))
    live = await start_gateway(service)
    for stream in (False, True):
        result = await client.infer(live.target, kit.prompt(stream=stream), timeout_s=5)
        assert result.status_code == 500
        assert "internal_error" in result.message and "secret" not in result.message
    service.fail_with = None
    assert (await client.infer(live.target, kit.prompt(), timeout_s=5)).ok


async def test_error_after_stream_started_is_a_final_error_line(start_gateway: Any, client: Any, kit: Any) -> None:
    service = kit.FakeService(chunks=kit.make_chunks(3), fail_after=kit.Boom("kaput"))
    live = await start_gateway(service)
    result = await client.infer(live.target, kit.prompt(stream=True), timeout_s=5)
    assert result.error is QueryErrorCode.STREAM_ERROR
    assert result.message.startswith("internal_error:") and "kaput" not in result.message
    assert len(result.chunk_arrivals) == 1


async def test_client_disconnect_closes_the_service_stream(
    start_gateway: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    gate = asyncio.Event()
    service = kit.FakeService(chunks=kit.make_chunks(3), gate=gate)
    live = await start_gateway(service)
    body = kit.prompt(stream=True).model_dump_json().encode()
    headers = kit.signed_headers(validator_keypair, body, receiver_ss58=live.target.hotkey_ss58)
    async with raw_http.stream("POST", f"{live.base_url}/Inference", content=body, headers=headers) as response:
        assert response.status_code == 200
        await anext(response.aiter_lines())
    for _ in range(100):
        if service.closed_early:
            break
        await asyncio.sleep(0.02)
    assert service.closed_early == 1 and service.finished == 0


async def test_slow_body_is_408(start_gateway: Any) -> None:
    live = await start_gateway(config=GatewayConfig(port=0, body_timeout_s=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", live.server.port)
    head = b"POST /Inference HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Bittensor-Signature: 0x00\r\n\r\n"
    writer.write(head + b'{"mess')
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"error":"body_timeout"' in answer


async def test_sse_sends_keepalives_while_the_service_is_quiet(
    start_gateway: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    gate = asyncio.Event()
    live = await start_gateway(
        kit.FakeService(chunks=kit.make_chunks(2), gate=gate), config=GatewayConfig(port=0, sse_keepalive_s=0.05)
    )
    body = kit.prompt(stream=True).model_dump_json().encode()
    headers = {
        **kit.signed_headers(validator_keypair, body, receiver_ss58=live.target.hotkey_ss58),
        "accept": "text/event-stream",
    }
    async with raw_http.stream("POST", f"{live.base_url}/Inference", content=body, headers=headers) as response:
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("data: ")
        assert await anext(lines) == ""
        assert await anext(lines) == ": keepalive"
        gate.set()
        rest = [line async for line in lines]
    events = [line.removeprefix("data: ") for line in rest if line.startswith("data: ")]
    assert [InferenceChunk.model_validate_json(e).token_ids for e in events] == [[101]]


async def test_authenticator_can_be_overridden(
    start_gateway: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    from gateway import Caller

    live = await start_gateway()
    hotkey = validator_keypair.ss58_address
    live.app.dependency_overrides[live.app.state.authenticator] = lambda: Caller(hotkey, "test", "0")
    body = kit.prompt().model_dump_json()
    response = await raw_http.post(f"{live.base_url}/Inference", content=body)
    assert response.status_code == 200, response.text
    assert response.json()["token_ids"] == [100, 101, 102]
