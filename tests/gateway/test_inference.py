"""A signed request through a live gateway gets a completion: unary, NDJSON stream, SSE stream."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from protocol.client import QueryErrorCode
from protocol.synapses import InferenceChunk, InferenceResponse


async def test_unary_inference_returns_the_joined_completion(start_gateway: Any, client: Any, kit: Any) -> None:
    live = await start_gateway(kit.FakeService(chunks=kit.make_chunks(3, tokens_per_chunk=2)))
    result = await client.infer(live.target, kit.prompt(max_tokens=6, temperature=0.7, seed=5), timeout_s=5)
    assert result.ok, result.message
    response = result.raise_for_failure()
    assert response.token_ids == [100, 101, 102, 103, 104, 105]
    assert response.text.startswith("t100 t101 ")
    assert response.finish_reason == "length"
    assert response.usage.completion_tokens == 6
    assert response.model == kit.model
    assert response.timings is not None and response.timings.ttft_s is not None
    assert result.ttft_s == result.total_s
    assert result.tokens_per_s is not None and result.tokens_per_s > 0
    assert result.chunk_arrivals == ()
    sent = live.service.requests[0]
    assert (sent.temperature, sent.seed, sent.max_tokens) == (0.7, 5, 6)


async def test_stream_delivers_first_chunk_while_generation_still_runs(
    start_gateway: Any, client: Any, kit: Any
) -> None:
    service = kit.FakeService(chunks=kit.make_chunks(4), delay_s=0.3)
    live = await start_gateway(service)
    result = await client.infer(live.target, kit.prompt(stream=True, max_tokens=4), timeout_s=10)
    assert result.ok, result.message
    assert result.raise_for_failure().token_ids == [100, 101, 102, 103]
    assert [tokens for _, tokens in result.chunk_arrivals] == [1, 1, 1, 1]
    arrivals = [at for at, _ in result.chunk_arrivals]
    assert arrivals == sorted(arrivals)
    assert result.ttft_s == arrivals[0]
    # The client sent before the service started generating, so this bounds the first chunk's
    # arrival from above; through a buffering gateway it could not precede the last chunk.
    first_arrival_at_most = service.started_at[0] + arrivals[0]
    assert first_arrival_at_most < service.yielded_at[-1]


async def test_raw_ndjson_stream_is_one_chunk_per_line_and_flushed(
    start_gateway: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    gate = asyncio.Event()
    service = kit.FakeService(chunks=kit.make_chunks(3), gate=gate)
    live = await start_gateway(service)
    body = kit.prompt(stream=True).model_dump_json().encode()
    headers = kit.signed_headers(validator_keypair, body, receiver_ss58=live.target.hotkey_ss58)
    async with raw_http.stream("POST", f"{live.base_url}/Inference", content=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = response.aiter_lines()
        first = InferenceChunk.model_validate_json(await anext(lines))
        assert first.token_ids == [100]
        assert service.finished == 0  # the service is still blocked on the gate
        gate.set()
        rest = [InferenceChunk.model_validate_json(line) async for line in lines if line]
    assert [c.token_ids for c in rest] == [[101], [102]]
    assert rest[-1].finish_reason == "length"


async def test_sse_stream_when_the_client_asks_for_event_stream(
    start_gateway: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    live = await start_gateway(kit.FakeService(chunks=kit.make_chunks(2)))
    body = kit.prompt(stream=True).model_dump_json().encode()
    headers = {
        **kit.signed_headers(validator_keypair, body, receiver_ss58=live.target.hotkey_ss58),
        "accept": "text/event-stream",
    }
    response = await raw_http.post(f"{live.base_url}/Inference", content=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    chunks = [InferenceChunk.model_validate_json(e.removeprefix("data: ")) for e in events]
    assert InferenceResponse.from_chunks(chunks).token_ids == [100, 101]


async def test_capabilities_health_and_metrics(
    start_gateway: Any,
    client: Any,
    stranger_client: Any,
    raw_http: httpx.AsyncClient,
    validator_keypair: Any,
    stranger_keypair: Any,
    kit: Any,
) -> None:
    live = await start_gateway()
    assert (await stranger_client.infer(live.target, kit.prompt(), timeout_s=5)).status_code == 403
    caps = await client.capabilities(live.target, timeout_s=5)
    assert caps.ok and caps.raise_for_failure() == kit.capabilities
    assert (await client.infer(live.target, kit.prompt(stream=True), timeout_s=5)).ok
    health = await raw_http.get(f"{live.base_url}/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert (await raw_http.post(f"{live.base_url}/Inference", content=b"{}")).status_code == 401

    metrics = (await raw_http.get(f"{live.base_url}/metrics")).text
    caller = validator_keypair.ss58_address
    assert f'axongate_gateway_requests_total{{caller="{caller}",route="/Inference",status="200"}} 1.0' in metrics
    assert f'axongate_gateway_requests_total{{caller="{caller}",route="/Capabilities",status="200"}} 1.0' in metrics
    assert 'axongate_gateway_requests_total{caller="-",route="/Inference",status="401"} 1.0' in metrics
    assert f'axongate_gateway_completion_tokens_total{{caller="{caller}"}} 3.0' in metrics
    assert "axongate_gateway_ttft_seconds_count 1.0" in metrics
    assert "axongate_gateway_in_flight 0.0" in metrics
    # A verified but unregistered hotkey is not a label: callers cannot grow the series set.
    assert 'axongate_gateway_requests_total{caller="-",route="/Inference",status="403"} 1.0' in metrics
    assert stranger_keypair.ss58_address not in metrics


async def test_client_reports_a_rejection_as_typed_http_status(
    start_gateway: Any, stranger_client: Any, kit: Any
) -> None:
    live = await start_gateway()
    result = await stranger_client.infer(live.target, kit.prompt(), timeout_s=5)
    assert not result.ok
    assert result.error is QueryErrorCode.HTTP_STATUS and result.status_code == 403
    assert "hotkey_not_registered" in result.message


async def test_a_wallet_hotkey_created_on_disk_signs_for_the_client(
    start_gateway: Any, tmp_path: Any, kit: Any
) -> None:
    import bittensor as bt

    from gateway import StaticMetagraphView
    from protocol.client import MinerClient

    wallet = bt.Wallet(name="validator", hotkey="default", path=str(tmp_path / "wallets"))
    wallet.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    hotkey = bt.Wallet(name="validator", hotkey="default", path=str(tmp_path / "wallets")).hotkey  # reloaded
    live = await start_gateway(peers=StaticMetagraphView.of_validators([hotkey.ss58_address]))
    async with MinerClient(hotkey) as wallet_client:
        result = await wallet_client.infer(live.target, kit.prompt(stream=True), timeout_s=5)
    assert result.ok, result.message
