"""Epistula v2 signing and verification: the wire message, every rejection reason, and the httpx signer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from bittensor_core import CRYPTO_SR25519
from bittensor_core import verify as sr25519_verify

from protocol.auth import AuthErrorCode, AuthFailure
from protocol.auth.epistula import (
    EpistulaAuth,
    has_epistula_headers,
    sign_epistula,
    signature_message,
    verify_epistula_signature,
)

BODY = b'{"messages":[{"role":"user","content":"hello"}],"max_tokens":8}'
UUID = "0b7f2c52-3f51-4c1e-9d1e-4c0f9a3e6b21"
NOW_MS = 1_796_311_141_410


def _sign(keypair: Any, receiver: str, **overrides: Any) -> dict[str, str]:
    options: dict[str, Any] = {"signed_for": receiver, "timestamp_ms": NOW_MS, "uuid": UUID, **overrides}
    body = options.pop("body", BODY)
    return sign_epistula(keypair, body, **options)


def _verify(headers: dict[str, str], receiver: str, *, body: bytes = BODY, now_ms: int = NOW_MS) -> Any:
    return verify_epistula_signature(
        headers, body, receiver_ss58=receiver, max_age_s=10.0, allowed_skew_s=2.0, now_ms=now_ms
    )


def _code(call: Any) -> AuthErrorCode:
    with pytest.raises(AuthFailure) as caught:
        call()
    return caught.value.code


def test_signed_message_is_the_targon_format(validator_keypair: Any, miner_keypair: Any) -> None:
    """sha256(body) hex, uuid, millisecond timestamp and receiver, joined by dots, as UTF-8."""
    expected = f"{hashlib.sha256(BODY).hexdigest()}.{UUID}.{NOW_MS}.{miner_keypair.ss58_address}".encode()
    message = signature_message(body=BODY, uuid=UUID, timestamp_ms=NOW_MS, signed_for=miner_keypair.ss58_address)
    assert message == expected
    headers = _sign(validator_keypair, miner_keypair.ss58_address)
    assert headers["Epistula-Version"] == "2"
    assert headers["Epistula-Timestamp"] == str(NOW_MS)
    assert headers["Epistula-Uuid"] == UUID
    assert headers["Epistula-Signed-By"] == validator_keypair.ss58_address
    assert headers["Epistula-Signed-For"] == miner_keypair.ss58_address
    signature = headers["Epistula-Request-Signature"]
    assert signature.startswith("0x") and len(signature) == 2 + 128
    assert sr25519_verify(expected, bytes.fromhex(signature[2:]), validator_keypair.ss58_address, CRYPTO_SR25519)


def test_a_signature_made_the_way_subnet_validators_make_it_verifies(
    validator_keypair: Any, miner_keypair: Any
) -> None:
    """Their validators sign the message as a str and send ``"0x" + sig.hex()``; the receiver is last."""
    message = f"{hashlib.sha256(BODY).hexdigest()}.{UUID}.{NOW_MS}.{miner_keypair.ss58_address}"
    headers = {
        "Epistula-Version": "2",
        "Epistula-Timestamp": str(NOW_MS),
        "Epistula-Uuid": UUID,
        "Epistula-Signed-By": validator_keypair.ss58_address,
        "Epistula-Signed-For": miner_keypair.ss58_address,
        "Epistula-Request-Signature": "0x" + bytes(validator_keypair.sign(message)).hex(),
    }
    sender = _verify(headers, miner_keypair.ss58_address)
    assert (sender.hotkey_ss58, sender.uuid, sender.timestamp_ms) == (validator_keypair.ss58_address, UUID, NOW_MS)


def test_a_browser_wallet_bytes_wrapped_signature_verifies(validator_keypair: Any, miner_keypair: Any) -> None:
    message = signature_message(body=BODY, uuid=UUID, timestamp_ms=NOW_MS, signed_for=miner_keypair.ss58_address)
    headers = _sign(validator_keypair, miner_keypair.ss58_address)
    wrapped = bytes(validator_keypair.sign(b"<Bytes>" + message + b"</Bytes>"))
    headers["Epistula-Request-Signature"] = "0x" + wrapped.hex()
    assert _verify(headers, miner_keypair.ss58_address).hotkey_ss58 == validator_keypair.ss58_address


def test_window_is_two_sided_and_inclusive(validator_keypair: Any, miner_keypair: Any) -> None:
    miner = miner_keypair.ss58_address
    headers = _sign(validator_keypair, miner)
    assert _verify(headers, miner, now_ms=NOW_MS + 10_000).uuid == UUID
    assert _verify(headers, miner, now_ms=NOW_MS - 2_000).uuid == UUID
    assert _code(lambda: _verify(headers, miner, now_ms=NOW_MS + 10_001)) is AuthErrorCode.STALE
    assert _code(lambda: _verify(headers, miner, now_ms=NOW_MS - 2_001)) is AuthErrorCode.STALE


def test_signature_is_checked_before_receiver_and_window(
    validator_keypair: Any, miner_keypair: Any, stranger_keypair: Any
) -> None:
    """A forged request learns nothing about our windows or hotkey: it is just a bad signature."""
    miner = miner_keypair.ss58_address
    forged = _sign(stranger_keypair, stranger_keypair.ss58_address)
    forged["Epistula-Signed-By"] = validator_keypair.ss58_address
    assert _code(lambda: _verify(forged, miner, now_ms=NOW_MS + 3_600_000)) is AuthErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("tampered_body", AuthErrorCode.BAD_SIGNATURE),
        ("tampered_timestamp", AuthErrorCode.BAD_SIGNATURE),
        ("tampered_uuid", AuthErrorCode.BAD_SIGNATURE),
        ("other_signer_claimed", AuthErrorCode.BAD_SIGNATURE),
        ("signed_for_another_miner", AuthErrorCode.WRONG_RECEIVER),
        ("signed_for_nobody", AuthErrorCode.WRONG_RECEIVER),
        ("receiver_header_rewritten", AuthErrorCode.BAD_SIGNATURE),
        ("version_1", AuthErrorCode.MALFORMED),
        ("missing_uuid", AuthErrorCode.MALFORMED),
        ("uuid_not_a_uuid", AuthErrorCode.MALFORMED),
        ("timestamp_in_seconds_with_fraction", AuthErrorCode.MALFORMED),
        ("signature_not_hex", AuthErrorCode.MALFORMED),
        ("signature_too_short", AuthErrorCode.MALFORMED),
        ("signer_not_ss58", AuthErrorCode.MALFORMED),
    ],
)
def test_rejections(
    case: str, expected: AuthErrorCode, validator_keypair: Any, miner_keypair: Any, stranger_keypair: Any
) -> None:
    miner = miner_keypair.ss58_address
    headers = _sign(validator_keypair, miner)
    body = BODY
    match case:
        case "tampered_body":
            body = BODY.replace(b"hello", b"HELLO")
        case "tampered_timestamp":
            headers["Epistula-Timestamp"] = str(NOW_MS + 1)
        case "tampered_uuid":
            headers["Epistula-Uuid"] = UUID.replace("0b7f", "0b7e")
        case "other_signer_claimed":
            headers["Epistula-Signed-By"] = stranger_keypair.ss58_address
        case "signed_for_another_miner":
            headers = _sign(validator_keypair, stranger_keypair.ss58_address)
        case "signed_for_nobody":
            headers = _sign(validator_keypair, "")
            del headers["Epistula-Signed-For"]
        case "receiver_header_rewritten":
            headers = _sign(validator_keypair, stranger_keypair.ss58_address)
            headers["Epistula-Signed-For"] = miner
        case "version_1":
            headers["Epistula-Version"] = "1"
        case "missing_uuid":
            del headers["Epistula-Uuid"]
        case "uuid_not_a_uuid":
            headers = _sign(validator_keypair, miner, uuid="a.b")
        case "timestamp_in_seconds_with_fraction":
            headers["Epistula-Timestamp"] = "1796311141.41"
        case "signature_not_hex":
            headers["Epistula-Request-Signature"] = "0x" + "zz" * 64
        case "signature_too_short":
            headers["Epistula-Request-Signature"] = headers["Epistula-Request-Signature"][:-2]
        case "signer_not_ss58":
            headers["Epistula-Signed-By"] = "not-an-address"
    assert _code(lambda: _verify(headers, miner, body=body)) is expected


def test_headers_are_read_case_insensitively(validator_keypair: Any, miner_keypair: Any) -> None:
    headers = {key.lower(): value for key, value in _sign(validator_keypair, miner_keypair.ss58_address).items()}
    assert has_epistula_headers(headers)
    assert _verify(headers, miner_keypair.ss58_address).uuid == UUID
    assert not has_epistula_headers({"X-Bittensor-Signature": "0x00", "content-type": "application/json"})


def test_httpx_signer_covers_the_bytes_sent(validator_keypair: Any, miner_keypair: Any) -> None:
    """Each request gets a fresh uuid and the signature verifies over the exact body httpx sent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    auth = EpistulaAuth(validator_keypair, miner_keypair.ss58_address, clock_ms=lambda: NOW_MS)
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as http:
        http.post("http://miner/Inference", json={"prompt": "hé"})
        http.post("http://miner/Inference", content=BODY)
    assert len(seen) == 2
    uuids = set()
    for request in seen:
        headers = dict(request.headers)
        sender = _verify(headers, miner_keypair.ss58_address, body=request.content)
        assert sender.hotkey_ss58 == validator_keypair.ss58_address
        uuids.add(sender.uuid)
    assert len(uuids) == 2
    assert json.loads(seen[0].content) == {"prompt": "hé"}
