"""Bad requests get a 4xx JSON naming the problem, and the gateway keeps serving good ones."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from bittensor import http_auth

from gateway import GatewayConfig, PolicyConfig

SMALL_BODY_LIMIT = 2048


def _good_body(kit: Any) -> bytes:
    return kit.prompt().model_dump_json().encode()


def _bad_signature(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    body = ctx["body"]
    headers = ctx["sign"](body)
    return body.replace(b"hello", b"HELLO"), headers, "/Inference"


def _wrong_receiver(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    return ctx["body"], ctx["sign"](ctx["body"], receiver_ss58=ctx["stranger"]), "/Inference"


def _missing_receiver(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    headers = ctx["sign"](ctx["body"])
    del headers[http_auth.HEADER_RECEIVER]
    return ctx["body"], headers, "/Inference"


def _stale_nonce(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    return ctx["body"], ctx["sign"](ctx["body"], nonce_ns=time.time_ns() - 60 * 10**9), "/Inference"


def _future_nonce(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    return ctx["body"], ctx["sign"](ctx["body"], nonce_ns=time.time_ns() + 60 * 10**9), "/Inference"


def _garbage_signature(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    headers = ctx["sign"](ctx["body"])
    headers[http_auth.HEADER_SIGNATURE] = "0xnot-hex"
    return ctx["body"], headers, "/Inference"


def _unsigned(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    return ctx["body"], {"content-type": "application/json"}, "/Inference"


def _stranger(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    return ctx["body"], ctx["sign"](ctx["body"], keypair=ctx["stranger_keypair"]), "/Inference"


def _denied(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    return ctx["body"], ctx["sign"](ctx["body"], keypair=ctx["denied_keypair"]), "/Inference"


def _oversized(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    body = b'{"messages": [{"role": "user", "content": "' + b"x" * SMALL_BODY_LIMIT + b'"}]}'
    return body, ctx["sign"](body), "/Inference"


def _malformed_json(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    body = b'{"messages": [{"role": "user", "content": "hi"}'
    return body, ctx["sign"](body), "/Inference"


def _temperature_out_of_range(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    body = b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 7.5}'
    return body, ctx["sign"](body), "/Inference"


def _top_p_zero(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    body = b'{"messages": [{"role": "user", "content": "hi"}], "top_p": 0}'
    return body, ctx["sign"](body), "/Inference"


def _unknown_field(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    body = b'{"messages": [{"role": "user", "content": "hi"}], "tools": []}'
    return body, ctx["sign"](body), "/Inference"


def _unknown_route(ctx: dict[str, Any]) -> tuple[bytes, dict[str, str], str]:
    return ctx["body"], ctx["sign"](ctx["body"], path="/Nope"), "/Nope"


CASES = [
    (_bad_signature, 401, "auth_bad_signature", "signature"),
    (_wrong_receiver, 403, "auth_wrong_receiver", "receiving hotkey"),
    (_missing_receiver, 403, "auth_wrong_receiver", "X-Bittensor-Receiver"),
    (_stale_nonce, 401, "auth_stale", "freshness window"),
    (_future_nonce, 401, "auth_stale", "future"),
    (_garbage_signature, 400, "auth_malformed", "X-Bittensor-Signature"),
    (_unsigned, 401, "auth_missing", "btauth/1"),
    (_stranger, 403, "hotkey_not_registered", "not registered"),
    (_denied, 403, "hotkey_denied", "deny list"),
    (_oversized, 413, "body_too_large", f"{SMALL_BODY_LIMIT}-byte limit"),
    (_malformed_json, 400, "malformed_json", "not valid JSON"),
    (_temperature_out_of_range, 422, "invalid_request", "temperature"),
    (_top_p_zero, 422, "invalid_request", "top_p"),
    (_unknown_field, 422, "invalid_request", "tools"),
    (_unknown_route, 404, "not_found", "/Nope"),
]


@pytest.fixture
async def live(start_gateway: Any, validator_keypair: Any, stranger_keypair: Any) -> Any:
    import bittensor as bt

    denied = bt.sp_core.Keypair.create_from_uri("//Dave")
    from gateway import StaticMetagraphView

    peers = StaticMetagraphView.of_validators([validator_keypair.ss58_address, denied.ss58_address])
    return await start_gateway(
        config=GatewayConfig(port=0, max_body_bytes=SMALL_BODY_LIMIT),
        policy_config=PolicyConfig(deny_hotkeys=frozenset({denied.ss58_address})),
        peers=peers,
    ), denied


@pytest.mark.parametrize(("make", "status", "code", "detail"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
async def test_rejection_is_json_and_the_next_good_request_is_served(
    live: Any,
    raw_http: httpx.AsyncClient,
    validator_keypair: Any,
    stranger_keypair: Any,
    client: Any,
    kit: Any,
    make: Any,
    status: int,
    code: str,
    detail: str,
) -> None:
    gateway, denied = live

    def sign(
        body: bytes, *, keypair: Any = validator_keypair, receiver_ss58: str | None = None, **kwargs: Any
    ) -> dict[str, str]:
        receiver = receiver_ss58 or gateway.target.hotkey_ss58
        return kit.signed_headers(keypair, body, receiver_ss58=receiver, **kwargs)

    ctx = {
        "body": _good_body(kit),
        "sign": sign,
        "stranger": stranger_keypair.ss58_address,
        "stranger_keypair": stranger_keypair,
        "denied_keypair": denied,
    }
    body, headers, path = make(ctx)
    response = await raw_http.post(f"{gateway.base_url}{path}", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["error"] == code
    assert detail in payload["detail"]
    assert gateway.service.requests == []  # rejected before any model work

    ok = await client.infer(gateway.target, kit.prompt(), timeout_s=5)
    assert ok.ok, ok.message


async def test_replayed_request_is_rejected(
    start_gateway: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    live = await start_gateway()
    body = _good_body(kit)
    headers = kit.signed_headers(validator_keypair, body, receiver_ss58=live.target.hotkey_ss58)
    first = await raw_http.post(f"{live.base_url}/Inference", content=body, headers=headers)
    assert first.status_code == 200
    again = await raw_http.post(f"{live.base_url}/Inference", content=body, headers=headers)
    assert again.status_code == 401
    assert again.json()["error"] == "auth_replayed"
    assert len(live.service.requests) == 1


async def test_chunked_body_over_the_limit_is_rejected_while_reading(
    start_gateway: Any, raw_http: httpx.AsyncClient, validator_keypair: Any, kit: Any
) -> None:
    live = await start_gateway(config=GatewayConfig(port=0, max_body_bytes=SMALL_BODY_LIMIT))
    body = b"x" * (SMALL_BODY_LIMIT * 4)
    headers = kit.signed_headers(validator_keypair, body, receiver_ss58=live.target.hotkey_ss58)

    async def chunked() -> Any:
        for i in range(0, len(body), 512):
            yield body[i : i + 512]

    response = await raw_http.post(f"{live.base_url}/Inference", content=chunked(), headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


async def test_wrong_method_is_json_405(start_gateway: Any, raw_http: httpx.AsyncClient) -> None:
    live = await start_gateway()
    response = await raw_http.get(f"{live.base_url}/Inference")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
