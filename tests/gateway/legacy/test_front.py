"""The legacy endpoint answers in front of FastAPI and still does what the middleware did for it.

:class:`gateway.legacy.LegacyAxon` serves ``GET|POST /{synapse}`` with ``bt_header_dendrite_*``
headers before the FastAPI stack: its answers must still be counted in the metrics (by caller once
the policy accepted it) and signed for an authenticated caller; streams must flow as produced;
whatever it does not claim must get FastAPI's answers as before.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
from protocol.auth.legacy import InMemoryMonotonicNonceStore
from protocol.response_signing import HEADER_SIGNATURE, RequestBinding, verify_unary


async def _serve(app: Any) -> GatewayServer:
    server = GatewayServer(app, "127.0.0.1", 0, grace_s=0.5)
    await server.start()
    return server


def _app(
    kit: Any,
    validator: Any,
    miner: Any,
    *,
    service: Any = None,
    deny: frozenset[str] = frozenset(),
    config: GatewayConfig | None = None,
    **extra: Any,
) -> Any:
    peers = StaticMetagraphView.of_validators([validator.ss58_address, *deny])
    return create_app(
        service if service is not None else kit.FakeService(chunks=kit.make_chunks(2)),
        hotkey_ss58=miner.ss58_address,
        config=config if config is not None else GatewayConfig(port=0),
        policy=Policy(PolicyConfig(deny_hotkeys=deny), peers),
        **extra,
    )


async def test_legacy_answers_are_signed_and_counted_by_caller(
    kit: Any, legacy_kit: Any, validator_keypair: Any, miner_keypair: Any
) -> None:
    registry = CollectorRegistry()
    app = _app(kit, validator_keypair, miner_keypair, registry=registry, signer=miner_keypair)
    server = await _serve(app)
    url = f"http://127.0.0.1:{server.port}/Inference"
    try:
        body, headers = legacy_kit.request(validator_keypair, legacy_kit.body(), axon_hotkey=miner_keypair.ss58_address)
        forged = {**headers, "bt_header_dendrite_signature": "0x" + "00" * 64}
        async with httpx.AsyncClient(trust_env=False) as http:
            answer = await http.post(url, content=body, headers=headers)
            rejected = await http.post(url, content=body, headers=forged)
    finally:
        await server.stop()
    assert answer.status_code == 200, answer.text
    binding = RequestBinding.of(
        miner_ss58=miner_keypair.ss58_address,
        caller_ss58=validator_keypair.ss58_address,
        request_nonce=headers["bt_header_dendrite_nonce"],
        request_body=body,
    )
    assert verify_unary(answer.headers, binding, status=200, body=answer.content).ok
    assert rejected.status_code == 401 and HEADER_SIGNATURE not in rejected.headers
    sample = registry.get_sample_value
    ok = {"route": "/Inference", "status": "200", "caller": validator_keypair.ss58_address}
    assert sample("axongate_gateway_requests_total", ok) == 1.0
    assert sample("axongate_gateway_requests_total", {"route": "/Inference", "status": "401", "caller": "-"}) == 1.0
    assert sample("axongate_gateway_completion_tokens_total", {"caller": validator_keypair.ss58_address}) == 2.0


async def test_a_signing_miner_still_streams_legacy_answers_as_they_are_produced(
    kit: Any, legacy_kit: Any, validator_keypair: Any, miner_keypair: Any
) -> None:
    gate = asyncio.Event()
    service = kit.FakeService(chunks=kit.make_chunks(3), gate=gate)
    server = await _serve(_app(kit, validator_keypair, miner_keypair, service=service, signer=miner_keypair))
    url = f"http://127.0.0.1:{server.port}/InferenceStream"
    try:
        body, headers = legacy_kit.request(validator_keypair, legacy_kit.body(), axon_hotkey=miner_keypair.ss58_address)
        async with (
            httpx.AsyncClient(trust_env=False) as http,
            http.stream("POST", url, content=body, headers=headers) as r,
        ):
            assert r.status_code == 200 and r.headers["bt_header_axon_status_code"] == "200"
            lines = r.aiter_lines()
            first = await asyncio.wait_for(anext(lines), timeout=10)  # the service is still held at the gate
            gate.set()
            rest = [line async for line in lines if line]
    finally:
        await server.stop()
    assert json.loads(first)["token_ids"] == [100]
    assert [json.loads(line)["token_ids"] for line in rest] == [[101], [102]]
    assert HEADER_SIGNATURE not in r.headers  # v10 streams have no room for a signature line


async def test_a_refused_hotkey_leaves_no_replay_state(
    kit: Any, legacy_kit: Any, validator_keypair: Any, miner_keypair: Any, denied_keypair: Any
) -> None:
    store = InMemoryMonotonicNonceStore()
    deny = frozenset({denied_keypair.ss58_address})
    server = await _serve(_app(kit, validator_keypair, miner_keypair, deny=deny, legacy_nonce_store=store))
    url = f"http://127.0.0.1:{server.port}/Inference"
    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            refused = []
            for _ in range(3):
                body, headers = legacy_kit.request(
                    denied_keypair, legacy_kit.body(), axon_hotkey=miner_keypair.ss58_address
                )
                refused.append(await http.post(url, content=body, headers=headers))
            body, headers = legacy_kit.request(
                validator_keypair, legacy_kit.body(), axon_hotkey=miner_keypair.ss58_address
            )
            served = await http.post(url, content=body, headers=headers)
    finally:
        await server.stop()
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert served.status_code == 200
    assert len(store) == 1  # only the served validator's dendrite


async def test_legacy_requests_wait_for_an_in_flight_slot_instead_of_failing(
    kit: Any, legacy_kit: Any, validator_keypair: Any, miner_keypair: Any
) -> None:
    gate = asyncio.Event()
    service = kit.FakeService(chunks=kit.make_chunks(2), gate=gate)
    config = GatewayConfig(port=0, max_in_flight=1, admission_queue_size=4, admission_max_wait_s=10)
    server = await _serve(_app(kit, validator_keypair, miner_keypair, service=service, config=config))
    url = f"http://127.0.0.1:{server.port}/Inference"

    async def post(http: httpx.AsyncClient) -> httpx.Response:
        body, headers = legacy_kit.request(validator_keypair, legacy_kit.body(), axon_hotkey=miner_keypair.ss58_address)
        return await http.post(url, content=body, headers=headers)

    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            holding = asyncio.create_task(post(http))
            await asyncio.wait_for(service.first_yielded.wait(), 10)  # the only slot is taken, held at the gate
            waiting = asyncio.create_task(post(http))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            gate.set()
            first, second = await holding, await waiting
    finally:
        await server.stop()
    assert (first.status_code, second.status_code) == (200, 200), second.text


async def test_requests_the_legacy_endpoint_does_not_claim_get_fastapis_answers(
    kit: Any, legacy_kit: Any, validator_keypair: Any, miner_keypair: Any
) -> None:
    server = await _serve(_app(kit, validator_keypair, miner_keypair, registry=CollectorRegistry()))
    base = f"http://127.0.0.1:{server.port}"
    try:
        body, headers = legacy_kit.request(validator_keypair, legacy_kit.body(), axon_hotkey=miner_keypair.ss58_address)
        async with httpx.AsyncClient(trust_env=False) as http:
            put = await http.put(base + "/Inference", content=body, headers=headers)
            nested = await http.post(base + "/Inference/extra", content=body, headers=headers)
            head = await http.head(base + "/Inference", headers=headers)
    finally:
        await server.stop()
    assert put.status_code == 405 and put.json()["error"] == "method_not_allowed"
    assert nested.status_code == 404 and nested.json()["error"] == "not_found"
    assert head.status_code == 405 and "bt_header_axon_status_code" not in head.headers
