"""Hand-built legacy requests against a live gateway: every answer is in the shape v10 dendrites read.

Errors are ``{"message": ...}`` with the HTTP status mirrored in ``bt_header_axon_status_code`` and
the message in ``bt_header_axon_status_message`` (the dendrite reads the headers first); requests
without ``bt_header_dendrite_*`` headers still reach the btauth/1 routes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway import GatewayConfig, Overloaded, PolicyConfig, StaticMetagraphView

SMALL_BODY_LIMIT = 4096
Case = Callable[[dict[str, Any]], tuple[str, bytes, dict[str, str]]]


def _forged(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"]()
    signature = headers["bt_header_dendrite_signature"]
    headers["bt_header_dendrite_signature"] = signature[:-2] + ("00" if signature[-2:] != "00" else "11")
    return "/Inference", body, headers


def _body_altered(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"]()
    return "/Inference", body.replace(b"hello", b"HELLO"), headers


def _signed_for_other_axon(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"](signed_for=ctx["stranger"])
    return "/Inference", body, headers


def _stale(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"](nonce_ns=time.time_ns() - 60 * 10**9)
    return "/Inference", body, headers


def _missing_nonce(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"]()
    del headers["bt_header_dendrite_nonce"]
    return "/Inference", body, headers


def _not_json(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    _, headers = ctx["sign"]()
    return "/Inference", b"{not json", headers


def _not_a_synapse(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"](messages="hello")
    return "/Inference", body, headers


def _unknown_synapse(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"]()
    return "/Nope", body, headers


def _too_large(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"](messages=[{"role": "user", "content": "x" * SMALL_BODY_LIMIT}])
    return "/Inference", body, headers


def _invalid_request(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"](messages=[], max_tokens=0)
    return "/Inference", body, headers


def _denied(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"](keypair=ctx["denied_keypair"])
    return "/Inference", body, headers


def _unregistered(ctx: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    body, headers = ctx["sign"](keypair=ctx["stranger_keypair"])
    return "/Inference", body, headers


CASES: list[tuple[Case, int, str]] = [
    (_forged, 401, "signature does not verify"),
    (_body_altered, 401, "body does not match"),
    (_signed_for_other_axon, 401, "signature does not verify"),
    (_stale, 401, "older than"),
    (_missing_nonce, 400, "missing bt_header_dendrite_nonce"),
    (_not_json, 400, "not valid JSON"),
    (_not_a_synapse, 400, "not a Inference synapse: messages"),
    (_unknown_synapse, 404, "Synapse name 'Nope' not found"),
    (_too_large, 413, "exceeds"),
    (_invalid_request, 422, "messages"),
    (_denied, 403, "deny list"),
    (_unregistered, 403, "not registered"),
]


@pytest.fixture
async def legacy_gateway(
    start_gateway: Any, kit: Any, legacy_kit: Any, validator_keypair: Any, miner_keypair: Any, denied_keypair: Any
) -> Any:
    """A gateway with a small body cap and a deny list, plus a signer of legacy requests to it."""
    live = await start_gateway(
        kit.FakeService(chunks=kit.make_chunks(3, tokens_per_chunk=2)),
        config=GatewayConfig(port=0, max_body_bytes=SMALL_BODY_LIMIT),
        policy_config=PolicyConfig(deny_hotkeys=frozenset({denied_keypair.ss58_address})),
        peers=StaticMetagraphView.of_validators([validator_keypair.ss58_address, denied_keypair.ss58_address]),
    )

    def sign(*, keypair: Any = validator_keypair, signed_for: str | None = None, nonce_ns: int | None = None, **fields):
        return legacy_kit.request(
            keypair,
            legacy_kit.body(**fields),
            axon_hotkey=miner_keypair.ss58_address,
            signed_for=signed_for,
            nonce_ns=nonce_ns,
        )

    live.sign = sign
    return live


@pytest.mark.parametrize(("case", "status", "phrase"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
async def test_rejections_carry_status_headers_and_message(
    legacy_gateway: Any,
    raw_http: httpx.AsyncClient,
    stranger_keypair: Any,
    denied_keypair: Any,
    case: Case,
    status: int,
    phrase: str,
) -> None:
    ctx = {
        "sign": legacy_gateway.sign,
        "stranger": stranger_keypair.ss58_address,
        "stranger_keypair": stranger_keypair,
        "denied_keypair": denied_keypair,
    }
    path, body, headers = case(ctx)
    response = await raw_http.post(legacy_gateway.base_url + path, content=body, headers=headers)
    assert response.status_code == status, response.text
    message = response.json()["message"]
    assert phrase in message
    assert response.headers["bt_header_axon_status_code"] == str(status)
    assert response.headers["bt_header_axon_status_message"] == message
    assert legacy_gateway.service.requests == []  # rejected before any model work
    # and the gateway keeps serving
    body, headers = legacy_gateway.sign()
    assert (await raw_http.post(legacy_gateway.base_url + "/Inference", content=body, headers=headers)).is_success


async def test_get_is_served_like_post_and_echoes_the_synapse(legacy_gateway: Any, raw_http: httpx.AsyncClient) -> None:
    body, headers = legacy_gateway.sign(seed=9, temperature=0.5)
    response = await raw_http.request("GET", legacy_gateway.base_url + "/Inference", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    sent = json.loads(body)
    assert {k: answer[k] for k in ("messages", "seed", "temperature", "dendrite", "name")} == {
        k: sent[k] for k in ("messages", "seed", "temperature", "dendrite", "name")
    }
    assert answer["token_ids"] == [100, 101, 102, 103, 104, 105]
    assert answer["axon"]["status_code"] == 200 and answer["axon"]["status_message"] == "Success"
    assert response.headers["bt_header_axon_status_code"] == "200"
    assert float(response.headers["bt_header_axon_process_time"]) >= 0


async def test_stream_sends_status_headers_then_one_json_line_per_step(
    legacy_gateway: Any, raw_http: httpx.AsyncClient
) -> None:
    body, headers = legacy_gateway.sign()
    url = legacy_gateway.base_url + "/InferenceStream"
    async with raw_http.stream("POST", url, content=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["bt_header_axon_status_code"] == "200"
        lines = [json.loads(line) async for line in response.aiter_lines() if line]
    assert [line["token_ids"] for line in lines] == [[100, 101], [102, 103], [104, 105]]
    assert lines[-1]["finish_reason"] == "length"
    assert legacy_gateway.service.requests[0].stream


async def test_service_refusal_before_output_keeps_its_status(legacy_gateway: Any, raw_http: httpx.AsyncClient) -> None:
    legacy_gateway.service.fail_with = Overloaded("engine queue is full", retry_after_s=3)
    body, headers = legacy_gateway.sign()
    response = await raw_http.post(legacy_gateway.base_url + "/InferenceStream", content=body, headers=headers)
    assert response.status_code == 503
    assert response.json() == {"message": "engine queue is full"}
    assert response.headers["bt_header_axon_status_code"] == "503"
    assert response.headers["retry-after"] == "3"


async def test_failure_mid_stream_ends_with_an_error_line(legacy_gateway: Any, raw_http: httpx.AsyncClient) -> None:
    legacy_gateway.service.fail_after = Overloaded("engine restarted")
    body, headers = legacy_gateway.sign()
    url = legacy_gateway.base_url + "/InferenceStream"
    async with raw_http.stream("POST", url, content=body, headers=headers) as response:
        lines = [json.loads(line) async for line in response.aiter_lines() if line]
    assert lines[0]["token_ids"] == [100, 101]
    assert lines[-1] == {"error": "overloaded", "detail": "engine restarted"}


async def test_requests_without_legacy_headers_still_reach_btauth(
    legacy_gateway: Any, raw_http: httpx.AsyncClient
) -> None:
    response = await raw_http.post(legacy_gateway.base_url + "/Inference", json={"messages": []})
    assert response.status_code == 401
    assert response.json()["error"] == "auth_missing"
    assert "bt_header_axon_status_code" not in response.headers
