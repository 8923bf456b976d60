"""btauth/1: golden vectors, the httpx signer covers the bytes sent, failures map to AuthErrorCode."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import bittensor as bt
import httpx
import pytest
from bittensor import http_auth

from protocol.auth import AuthErrorCode, AuthFailure, BtAuth, has_btauth_headers, verify_btauth_signature

NONCE_NS = 1_764_720_000_000_000_000
BODY = b'{"messages":[]}'
ALICE_ED25519 = "5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu"
BOB_SR25519 = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"


@pytest.fixture(scope="module")
def alice() -> Any:
    return bt.sp_core.Keypair.create_from_uri("//Alice")


@pytest.fixture(scope="module")
def bob() -> Any:
    return bt.sp_core.Keypair.create_from_uri("//Bob")


def test_payload_golden_vector() -> None:
    payload = http_auth.build_payload(
        scheme="sr25519",
        method="post",
        path="/Inference?trace=1",
        body=BODY,
        nonce_ns=NONCE_NS,
        sender_ss58=ALICE_ED25519,
        receiver_ss58=BOB_SR25519,
    )
    assert payload == (
        b"btauth/1\n"
        b"sr25519\n"
        b"POST\n"
        b"/Inference?trace=1\n"
        b"5e4ce7b36ba37b78a5d5f9fd08e6b7b54ba6879d651aa46ec9e1d6fa24ebe30a\n"
        b"1764720000000000000\n"
        b"5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu\n"
        b"5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
    )
    assert hashlib.sha256(BODY).hexdigest() == "5e4ce7b36ba37b78a5d5f9fd08e6b7b54ba6879d651aa46ec9e1d6fa24ebe30a"


def _send_through(auth: httpx.Auth, *, url: str, content: bytes) -> httpx.Request:
    """Send via a mock transport and return the request exactly as it would go on the wire."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        http.post(url, content=content, auth=auth)
    return seen[0]


def test_ed25519_signed_headers_golden_vector() -> None:
    alice_ed = bt.sp_core.Keypair.create_from_uri("//Alice", crypto_type=0)
    sent = _send_through(
        BtAuth(alice_ed, BOB_SR25519, clock_ns=lambda: NONCE_NS), url="http://m/Inference?trace=1", content=BODY
    )
    assert sent.headers["X-Bittensor-Version"] == "1"
    assert sent.headers["X-Bittensor-Hotkey"] == ALICE_ED25519
    assert sent.headers["X-Bittensor-Nonce"] == str(NONCE_NS)
    assert sent.headers["X-Bittensor-Crypto"] == "ed25519"
    assert sent.headers["X-Bittensor-Receiver"] == BOB_SR25519
    assert sent.headers["X-Bittensor-Signature"] == (
        "0x77afb732fd5c2565b39081ae82d31d5a7f8272690398e8031706a5e8cb01d53a"
        "58f08ca9bf821ef32f65f3de8fb72cb60db03dbd2c3fcc3725c8dcdd8aaff100"
    )


def test_signer_covers_the_exact_bytes_and_target_sent(alice: Any, bob: Any) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "héllo"}]}).encode()
    sent = _send_through(BtAuth(alice, bob.ss58_address), url="http://m:8091/Inference?a=1&b=%20", content=body)
    assert sent.content == body
    sender = verify_btauth_signature(
        sent.headers, sent.content, method="POST", target="/Inference?a=1&b=%20", receiver_ss58=bob.ss58_address
    )
    assert sender.hotkey_ss58 == alice.ss58_address
    assert sender.nonce_ns == int(sent.headers["X-Bittensor-Nonce"])
    assert sender.crypto_type == 1
    assert has_btauth_headers(sent.headers) and not has_btauth_headers({"content-type": "x"})


def test_each_send_signs_a_fresh_nonce(alice: Any, bob: Any) -> None:
    auth = BtAuth(alice, bob.ss58_address)
    sent = [_send_through(auth, url="http://m/Inference", content=BODY) for _ in range(3)]
    nonces = {request.headers["X-Bittensor-Nonce"] for request in sent}
    assert len(nonces) == 3


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ({"body": b'{"messages":[1]}'}, AuthErrorCode.BAD_SIGNATURE),
        ({"target": "/Capabilities"}, AuthErrorCode.BAD_SIGNATURE),
        ({"method": "PUT"}, AuthErrorCode.BAD_SIGNATURE),
        ({"receiver": "alice"}, AuthErrorCode.WRONG_RECEIVER),
        ({"now_ns": NONCE_NS + 11 * 10**9}, AuthErrorCode.STALE),
        ({"now_ns": NONCE_NS - 3 * 10**9}, AuthErrorCode.STALE),
        ({"header": ("X-Bittensor-Nonce", "soon")}, AuthErrorCode.MALFORMED),
        ({"header": ("X-Bittensor-Signature", "0x1234")}, AuthErrorCode.MALFORMED),
        ({"header": ("X-Bittensor-Version", "2")}, AuthErrorCode.MALFORMED),
    ],
)
def test_verification_failures_map_to_codes(alice: Any, bob: Any, tamper: dict[str, Any], code: AuthErrorCode) -> None:
    headers = dict(
        _send_through(
            BtAuth(alice, bob.ss58_address, clock_ns=lambda: NONCE_NS), url="http://m/Inference", content=BODY
        ).headers
    )
    if "header" in tamper:
        name, value = tamper["header"]
        headers[name] = value
    receiver = alice.ss58_address if tamper.get("receiver") == "alice" else bob.ss58_address
    with pytest.raises(AuthFailure) as caught:
        verify_btauth_signature(
            headers,
            tamper.get("body", BODY),
            method=tamper.get("method", "POST"),
            target=tamper.get("target", "/Inference"),
            receiver_ss58=receiver,
            now_ns=tamper.get("now_ns", NONCE_NS),
        )
    assert caught.value.code is code
    assert "0x" not in caught.value.message  # never echoes the signature
