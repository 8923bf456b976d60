"""A live gateway serves Epistula v2 requests and rejects forged, stale, future, replayed and misaddressed ones."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from protocol.auth.epistula import sign_epistula
from protocol.client import MinerClient


async def test_protocol_client_signs_with_epistula(start_gateway: Any, validator_keypair: Any, kit: Any) -> None:
    gateway = await start_gateway()
    async with MinerClient(validator_keypair, auth_scheme="epistula") as client:
        unary = await client.infer(gateway.target, kit.prompt(), timeout_s=10.0)
        streamed = await client.infer(gateway.target, kit.prompt(stream=True), timeout_s=10.0)
        capabilities = await client.capabilities(gateway.target, timeout_s=10.0)
    assert unary.ok, unary.message
    assert streamed.ok, streamed.message
    assert unary.raise_for_failure().token_ids == streamed.raise_for_failure().token_ids == [100, 101, 102]
    assert capabilities.raise_for_failure().model == kit.model


def test_client_rejects_unknown_scheme(validator_keypair: Any) -> None:
    with pytest.raises(ValueError, match="auth_scheme"):
        MinerClient(validator_keypair, auth_scheme="basic")  # type: ignore[arg-type]


async def _post(http: httpx.AsyncClient, gateway: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await http.post(
        f"{gateway.base_url}/Inference", content=body, headers={**headers, "content-type": "application/json"}
    )


async def test_replayed_uuid_is_rejected(start_gateway: Any, validator_keypair: Any, raw_http: Any, kit: Any) -> None:
    gateway = await start_gateway()
    body = kit.prompt().model_dump_json().encode()
    headers = sign_epistula(validator_keypair, body, signed_for=gateway.target.hotkey_ss58)
    first = await _post(raw_http, gateway, body, headers)
    replay = await _post(raw_http, gateway, body, headers)
    assert first.status_code == 200, first.text
    assert replay.status_code == 401
    assert replay.json()["error"] == "auth_replayed"
    assert len(gateway.service.requests) == 1


async def test_same_uuid_from_another_signer_is_not_a_replay(
    start_gateway: Any, validator_keypair: Any, stranger_keypair: Any, raw_http: Any, kit: Any
) -> None:
    """The cache is keyed by (signer, uuid): one sender's uuid cannot block another's."""
    from gateway import StaticMetagraphView

    peers = StaticMetagraphView.of_validators([validator_keypair.ss58_address, stranger_keypair.ss58_address])
    gateway = await start_gateway(peers=peers)
    body = kit.prompt().model_dump_json().encode()
    shared_uuid = "9a0e8f5e-2c7b-4d57-8f7e-3b1f0d6c2a11"
    for keypair in (validator_keypair, stranger_keypair):
        headers = sign_epistula(keypair, body, signed_for=gateway.target.hotkey_ss58, uuid=shared_uuid)
        response = await _post(raw_http, gateway, body, headers)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("forged", 401, "auth_bad_signature"),
        ("body_altered", 401, "auth_bad_signature"),
        ("stale", 401, "auth_stale"),
        ("future", 401, "auth_stale"),
        ("wrong_receiver", 403, "auth_wrong_receiver"),
        ("no_receiver", 403, "auth_wrong_receiver"),
        ("version_1", 400, "auth_malformed"),
        ("missing_signature", 400, "auth_malformed"),
    ],
)
async def test_rejections_are_json_and_reach_no_model(
    case: str,
    status: int,
    error: str,
    start_gateway: Any,
    validator_keypair: Any,
    stranger_keypair: Any,
    raw_http: Any,
    kit: Any,
) -> None:
    gateway = await start_gateway()
    miner = gateway.target.hotkey_ss58
    body = kit.prompt().model_dump_json().encode()
    now_ms = round(time.time() * 1000)
    sent = body
    match case:
        case "forged":
            headers = sign_epistula(stranger_keypair, body, signed_for=miner)
            headers["Epistula-Signed-By"] = validator_keypair.ss58_address
        case "body_altered":
            headers = sign_epistula(validator_keypair, body, signed_for=miner)
            sent = body.replace(b"hello", b"HELLO")
        case "stale":
            headers = sign_epistula(validator_keypair, body, signed_for=miner, timestamp_ms=now_ms - 60_000)
        case "future":
            headers = sign_epistula(validator_keypair, body, signed_for=miner, timestamp_ms=now_ms + 60_000)
        case "wrong_receiver":
            headers = sign_epistula(validator_keypair, body, signed_for=stranger_keypair.ss58_address)
        case "no_receiver":
            headers = sign_epistula(validator_keypair, body, signed_for="")
            del headers["Epistula-Signed-For"]
        case "version_1":
            headers = sign_epistula(validator_keypair, body, signed_for=miner)
            headers["Epistula-Version"] = "1"
        case "missing_signature":
            headers = sign_epistula(validator_keypair, body, signed_for=miner)
            del headers["Epistula-Request-Signature"]
    response = await _post(raw_http, gateway, sent, headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]
    assert gateway.service.requests == []


async def test_policy_still_applies_after_epistula(
    start_gateway: Any, stranger_client: Any, stranger_keypair: Any, kit: Any
) -> None:
    """A correctly signed request from an unregistered hotkey is refused by the policy (403)."""
    gateway = await start_gateway()
    async with MinerClient(stranger_keypair, auth_scheme="epistula") as client:
        result = await client.infer(gateway.target, kit.prompt(), timeout_s=10.0)
    assert not result.ok
    assert result.status_code == 403
    assert "hotkey_not_registered" in result.message
