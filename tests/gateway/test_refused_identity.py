"""A validly signed request from a hotkey the policy refuses gets a signed 403 and leaves no replay state.

Anyone can make keys and sign: if refused hotkeys' nonces were recorded, unregistered signers
could grow the replay caches (Redis included) at signature-verification speed.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
from gateway.epistula import InMemoryUuidStore
from gateway.stores import InMemoryNonceStore
from protocol.auth.epistula import sign_epistula
from protocol.response_signing import RequestBinding, verify_unary


class RecordingNonceStore(InMemoryNonceStore):
    def __init__(self) -> None:
        super().__init__(retention_s=60.0)
        self.recorded: list[str] = []

    async def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        self.recorded.append(hotkey_ss58)
        return await super().check_and_store(hotkey_ss58, nonce_ns)


@pytest.mark.parametrize("scheme", ["btauth", "epistula"])
async def test_refused_hotkeys_leave_no_replay_state_and_get_a_signed_403(
    scheme: str, kit: Any, validator_keypair: Any, stranger_keypair: Any, miner_keypair: Any
) -> None:
    nonces, uuids = RecordingNonceStore(), InMemoryUuidStore()
    app = create_app(
        kit.FakeService(),
        hotkey_ss58=miner_keypair.ss58_address,
        config=GatewayConfig(port=0),
        policy=Policy(PolicyConfig(), StaticMetagraphView.of_validators([validator_keypair.ss58_address])),
        nonce_store=nonces,
        epistula_store=uuids,
        registry=CollectorRegistry(),
        signer=miner_keypair,
    )
    body = kit.prompt().model_dump_json().encode()

    def signed(keypair: Any) -> tuple[dict[str, str], str]:
        if scheme == "btauth":
            headers = kit.signed_headers(keypair, body, receiver_ss58=miner_keypair.ss58_address)
            return headers, headers["X-Bittensor-Nonce"]
        headers = sign_epistula(keypair, body, signed_for=miner_keypair.ss58_address)
        return headers, headers["Epistula-Uuid"]

    async with GatewayServer(app, "127.0.0.1", 0, grace_s=0.5) as server, httpx.AsyncClient(trust_env=False) as http:
        url = f"http://127.0.0.1:{server.port}/Inference"
        refused = []
        for _ in range(3):
            headers, nonce = signed(stranger_keypair)
            refused.append((await http.post(url, content=body, headers=headers), nonce))
        headers, _ = signed(validator_keypair)
        served = await http.post(url, content=body, headers=headers)
    assert served.status_code == 200, served.text
    for response, nonce in refused:
        assert response.status_code == 403 and response.json()["error"] == "hotkey_not_registered"
        binding = RequestBinding.of(
            miner_ss58=miner_keypair.ss58_address,
            caller_ss58=stranger_keypair.ss58_address,
            request_nonce=nonce,
            request_body=body,
        )
        assert verify_unary(response.headers, binding, status=403, body=response.content).ok
    assert len(nonces.recorded if scheme == "btauth" else uuids) == 1  # only the registered validator's request
