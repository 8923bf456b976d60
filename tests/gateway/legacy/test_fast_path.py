"""Legacy requests dispatched before FastAPI's routing keep everything the middleware adds.

The legacy handler serves ``GET|POST /{synapse}`` from an innermost ASGI middleware: its answers
must still be counted in the metrics and signed for an
authenticated caller, and whatever it does not claim must get FastAPI's answers as before.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
from protocol.response_signing import HEADER_SIGNATURE, RequestBinding, verify_unary


async def _serve(app: Any) -> GatewayServer:
    server = GatewayServer(app, "127.0.0.1", 0, grace_s=0.5)
    await server.start()
    return server


def _app(kit: Any, validator: Any, miner: Any, **extra: Any) -> Any:
    policy = Policy(PolicyConfig(), StaticMetagraphView.of_validators([validator.ss58_address]))
    return create_app(
        kit.FakeService(chunks=kit.make_chunks(2)),
        hotkey_ss58=miner.ss58_address,
        config=GatewayConfig(port=0),
        policy=policy,
        **extra,
    )


async def test_legacy_answers_are_signed_and_counted(
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
    # the legacy route does not label its callers (it never has): both answers count under "-"
    for status in ("200", "401"):
        labels = {"route": "/Inference", "status": status, "caller": "-"}
        assert registry.get_sample_value("axongate_gateway_requests_total", labels) == 1.0


async def test_requests_the_fast_path_does_not_claim_get_fastapis_answers(
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
    # HEAD still reaches the legacy route (Starlette serves HEAD wherever GET is allowed)
    assert "bt_header_axon_status_code" in head.headers
