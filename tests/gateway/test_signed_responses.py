"""axongate-response/1: golden vectors, and a live gateway whose answers a validator verifies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
from protocol.client import MinerClient, MinerTarget, QueryErrorCode
from protocol.response_signing import (
    HEADER_SIGNATURE,
    HEADER_SIGNED_BY,
    RequestBinding,
    StreamChain,
    StreamSignature,
    sign_unary,
    stream_payload,
    unary_payload,
    verify_stream,
    verify_unary,
)

# The worked example of docs/response-signing.md (//Bob is the miner, //Alice the validator).
GOLDEN_MINER = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
GOLDEN_CALLER = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
GOLDEN_NONCE = "1796311141410563224"
GOLDEN_REQUEST = b'{"messages":[{"role":"user","content":"hi"}]}'
GOLDEN_UNARY_BODY = b'{"ok":true}'
GOLDEN_UNARY_SIGNATURE = (
    "0x5845c0412e88e6b8f4c70a85b8bc1d9756233e77275020715c23316401c6ce3e"
    "15423236cc30d45006847420dc30e9daa642fa3eada5b8f836677d7643f70884"
)
GOLDEN_LINES = (b'{"a":1}', b'{"b":2}')
GOLDEN_HEADS = (
    "9f04ac81ee1b5e2c31e90cceb66ef9b96700788c8d8cd7b274ef729ef2fc3986",
    "899d2cdb2586e7262318d22981cc5c96c200cc6c4cf8d5c18256c80bba541a59",
    "6f750ef2bb23d4d87d31f0095b0ee14ce055064d115dd86bfe4a22aaefd3aaa1",
)
GOLDEN_STREAM_SIGNATURE = (
    "0xca54536d12529a35a2352d881287121da2baf91fd34000e3b2a60522251dae0c"
    "f72159a37dfdd5747e79338f83214689cd11667e86b4da3ecc2a66925be9d18b"
)


def golden_binding() -> RequestBinding:
    return RequestBinding.of(
        miner_ss58=GOLDEN_MINER, caller_ss58=GOLDEN_CALLER, request_nonce=GOLDEN_NONCE, request_body=GOLDEN_REQUEST
    )


def test_golden_unary_payload_and_signature(miner_keypair: Any) -> None:
    assert miner_keypair.ss58_address == GOLDEN_MINER
    payload = unary_payload(golden_binding(), crypto="sr25519", status=200, body=GOLDEN_UNARY_BODY)
    assert (
        payload
        == "\n".join(
            [
                "axongate-response/1",
                "unary",
                GOLDEN_MINER,
                GOLDEN_CALLER,
                GOLDEN_NONCE,
                hashlib.sha256(GOLDEN_REQUEST).hexdigest(),
                "sr25519",
                "200",
                hashlib.sha256(GOLDEN_UNARY_BODY).hexdigest(),
            ]
        ).encode()
    )
    headers = {
        HEADER_SIGNATURE: GOLDEN_UNARY_SIGNATURE,
        HEADER_SIGNED_BY: GOLDEN_MINER,
        "X-Axongate-Signature-Scheme": "axongate-response/1",
        "X-Axongate-Crypto": "sr25519",
    }
    assert verify_unary(headers, golden_binding(), status=200, body=GOLDEN_UNARY_BODY).ok
    # sr25519 signatures are randomised: a fresh one differs from the vector but verifies too.
    fresh = sign_unary(miner_keypair, golden_binding(), status=200, body=GOLDEN_UNARY_BODY)
    assert fresh[HEADER_SIGNATURE] != GOLDEN_UNARY_SIGNATURE
    assert verify_unary(fresh, golden_binding(), status=200, body=GOLDEN_UNARY_BODY).ok


def test_golden_stream_chain_and_signature() -> None:
    chain = StreamChain(golden_binding())
    seed = "\n".join(
        ["axongate-response/1", "stream", GOLDEN_MINER, GOLDEN_CALLER, GOLDEN_NONCE,
         hashlib.sha256(GOLDEN_REQUEST).hexdigest()]
    ).encode()  # fmt: skip
    assert chain.head == hashlib.sha256(seed).digest() and chain.head.hex() == GOLDEN_HEADS[0]
    for line, expected in zip(GOLDEN_LINES, GOLDEN_HEADS[1:], strict=True):
        chain.feed(line)
        assert chain.head.hex() == expected
    assert chain.payload("sr25519") == stream_payload(
        golden_binding(), crypto="sr25519", lines=2, chain_head=bytes.fromhex(GOLDEN_HEADS[2])
    )
    line = StreamSignature(
        signed_by=GOLDEN_MINER, crypto="sr25519", lines=2, chain=GOLDEN_HEADS[2], signature=GOLDEN_STREAM_SIGNATURE
    )
    assert verify_stream(chain, line).ok


@pytest.mark.parametrize(
    "field, value",
    [
        ("miner_ss58", GOLDEN_CALLER),
        ("caller_ss58", GOLDEN_MINER),
        ("request_nonce", "1"),
        ("request_sha256", "0" * 64),
    ],
)
def test_signature_is_bound_to_every_request_field(field: str, value: str) -> None:
    headers = {
        HEADER_SIGNATURE: GOLDEN_UNARY_SIGNATURE,
        HEADER_SIGNED_BY: GOLDEN_MINER,
        "X-Axongate-Signature-Scheme": "axongate-response/1",
    }
    other = _replace(field, value)
    check = verify_unary(headers, other, status=200, body=GOLDEN_UNARY_BODY)
    assert not check.ok and check.problem == "bad_signature"


def _replace(field: str, value: str) -> RequestBinding:
    base = golden_binding()
    values = {name: getattr(base, name) for name in ("miner_ss58", "caller_ss58", "request_nonce", "request_sha256")}
    values[field] = value
    return RequestBinding(**values)


def test_tampered_status_body_or_missing_headers_fail() -> None:
    headers = {
        HEADER_SIGNATURE: GOLDEN_UNARY_SIGNATURE,
        HEADER_SIGNED_BY: GOLDEN_MINER,
        "X-Axongate-Signature-Scheme": "axongate-response/1",
    }
    assert not verify_unary(headers, golden_binding(), status=503, body=GOLDEN_UNARY_BODY).ok
    assert not verify_unary(headers, golden_binding(), status=200, body=b'{"ok":false}').ok
    assert verify_unary({}, golden_binding(), status=200, body=GOLDEN_UNARY_BODY).problem == "unsigned"
    garbled = {**headers, HEADER_SIGNATURE: "0xzz"}
    assert verify_unary(garbled, golden_binding(), status=200, body=GOLDEN_UNARY_BODY).problem == "bad_signature"


def test_stream_with_a_dropped_line_fails() -> None:
    chain = StreamChain(golden_binding())
    chain.feed(GOLDEN_LINES[1])
    line = StreamSignature(
        signed_by=GOLDEN_MINER, crypto="sr25519", lines=2, chain=GOLDEN_HEADS[2], signature=GOLDEN_STREAM_SIGNATURE
    )
    check = verify_stream(chain, line)
    assert not check.ok and "dropped" in check.message


# --- a live gateway ------------------------------------------------------------------------------


@pytest.fixture
async def signing_gateway(validator_keypair: Any, miner_keypair: Any, kit: Any) -> AsyncIterator[Any]:
    """``await start(signer=...)`` -> (service, target) of a gateway on 127.0.0.1."""
    servers: list[GatewayServer] = []

    async def start(*, signer: Any, service: Any = None) -> tuple[Any, MinerTarget]:
        service = service if service is not None else kit.FakeService()
        policy = Policy(PolicyConfig(), StaticMetagraphView.of_validators([validator_keypair.ss58_address]))
        app = create_app(
            service,
            hotkey_ss58=miner_keypair.ss58_address,
            config=GatewayConfig(port=0),
            policy=policy,
            registry=CollectorRegistry(),
            signer=signer,
        )
        server = GatewayServer(app, "127.0.0.1", 0, grace_s=0.5)
        await server.start()
        servers.append(server)
        return service, MinerTarget("127.0.0.1", server.port, miner_keypair.ss58_address)

    yield start
    for server in servers:
        await server.stop()


class _Tamper(httpx.AsyncBaseTransport):
    """A man in the middle: replaces ``old`` with ``new`` in every response body."""

    def __init__(self, old: bytes, new: bytes) -> None:
        self._inner = httpx.AsyncHTTPTransport(trust_env=False)
        self._old, self._new = old, new

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = b"".join([piece async for piece in response.aiter_raw()])
        await response.aclose()
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body.replace(self._old, self._new))

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_verifying_client_accepts_signed_answers(
    signing_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any, stream: bool
) -> None:
    _, target = await signing_gateway(signer=miner_keypair)
    async with MinerClient(validator_keypair, verify_responses=True) as client:
        result = await client.infer(target, kit.prompt(stream=stream), timeout_s=5)
        assert result.ok, result.message
        assert result.response is not None and result.response.token_ids == [100, 101, 102]
        assert (await client.capabilities(target, timeout_s=5)).ok


@pytest.mark.parametrize("stream", [False, True])
async def test_verifying_client_rejects_unsigned_answers(
    signing_gateway: Any, validator_keypair: Any, kit: Any, stream: bool
) -> None:
    _, target = await signing_gateway(signer=None)
    async with MinerClient(validator_keypair, verify_responses=True) as client:
        result = await client.infer(target, kit.prompt(stream=stream), timeout_s=5)
    assert not result.ok and result.error is QueryErrorCode.UNSIGNED


@pytest.mark.parametrize("stream", [False, True])
async def test_verifying_client_rejects_tampered_answers(
    signing_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any, stream: bool
) -> None:
    _, target = await signing_gateway(signer=miner_keypair)
    # Token 101 becomes 109: still a well-formed answer, but not the one the miner signed.
    tamper = _Tamper(b"[101]" if stream else b"100,101,102", b"[109]" if stream else b"100,109,102")
    async with MinerClient(validator_keypair, verify_responses=True, transport=tamper) as client:
        result = await client.infer(target, kit.prompt(stream=stream), timeout_s=5)
    assert not result.ok and result.error is QueryErrorCode.BAD_SIGNATURE, result.message


async def test_non_verifying_client_reads_signed_streams(
    signing_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any
) -> None:
    _, target = await signing_gateway(signer=miner_keypair)
    async with MinerClient(validator_keypair) as client:
        result = await client.infer(target, kit.prompt(stream=True), timeout_s=5)
    assert result.ok and result.response is not None and len(result.response.token_ids) == 3


async def test_sse_stream_ends_with_a_signature_event(
    signing_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any
) -> None:
    _, target = await signing_gateway(signer=miner_keypair)
    body = kit.prompt(stream=True).model_dump_json().encode()
    headers = {**kit.signed_headers(validator_keypair, body, receiver_ss58=miner_keypair.ss58_address)}
    headers["accept"] = "text/event-stream"
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(target.url("Inference"), content=body, headers=headers)
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e.strip()]
    assert events[-1].startswith("event: signature\ndata: ")
    chain = StreamChain(
        RequestBinding.of(
            miner_ss58=miner_keypair.ss58_address,
            caller_ss58=validator_keypair.ss58_address,
            request_nonce=headers["X-Bittensor-Nonce"],
            request_body=body,
        )
    )
    for event in events[:-1]:
        chain.feed(event.removeprefix("data: ").encode())
    signature = StreamSignature.model_validate(json.loads(events[-1].split("data: ", 1)[1]))
    assert signature.lines == 3 and verify_stream(chain, signature).ok


async def test_rejections_after_authentication_are_signed_too(
    signing_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any
) -> None:
    _, target = await signing_gateway(signer=miner_keypair)
    body = b'{"messages": []}'
    headers = kit.signed_headers(validator_keypair, body, receiver_ss58=miner_keypair.ss58_address)
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(target.url("Inference"), content=body, headers=headers)
        unsigned = await http.post(target.url("Inference"), content=body)
    assert response.status_code == 422
    binding = RequestBinding.of(
        miner_ss58=miner_keypair.ss58_address,
        caller_ss58=validator_keypair.ss58_address,
        request_nonce=headers["X-Bittensor-Nonce"],
        request_body=body,
    )
    assert verify_unary(response.headers, binding, status=422, body=response.content).ok
    assert unsigned.status_code == 401 and HEADER_SIGNATURE not in unsigned.headers


def test_create_app_refuses_a_signer_for_another_hotkey(miner_keypair: Any, stranger_keypair: Any, kit: Any) -> None:
    policy = Policy(PolicyConfig(), StaticMetagraphView({}))
    with pytest.raises(ValueError, match="not the miner hotkey"):
        create_app(
            kit.FakeService(),
            hotkey_ss58=miner_keypair.ss58_address,
            config=GatewayConfig(port=0),
            policy=policy,
            signer=stranger_keypair,
        )
