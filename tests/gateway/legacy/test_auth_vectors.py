"""The legacy signing scheme reproduces bittensor 10.5.0 byte for byte, and its nonce rules hold.

Golden vectors: the captured exchange in the research notes (``Echo`` synapse) and one built with
the stock 10.5.0 SDK from ``protocol/legacy.py`` (``//Alice`` signing for ``//Bob``).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import bittensor as bt
import pytest

from gateway.legacy._wire import InferenceBody
from protocol.auth import AuthErrorCode, AuthFailure
from protocol.auth import legacy as legacy_auth

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"

# Built by the stock 10.5.0 SDK: Inference(...).model_dump() as JSON, body_hash, and Alice's signature.
V10_NONCE = 1796311341030863904
V10_UUID = "5562471e-ef2d-11f1-b4e6-0f86d9c3c5fe"
V10_MESSAGES = [
    {"role": "system", "content": "Be 'brief'."},
    {"role": "user", "content": 'Say "h\u00e9llo"\n\\ \U0001f642'},
]
V10_BODY = {"messages": V10_MESSAGES, "max_tokens": 64, "temperature": 0.7, "top_p": 0.95, "top_k": 40, "seed": None}
V10_HASH = "24aaafd33adca3125b8b30e4c21b5564d19ee95ff03614d539ffe239156c179a"
V10_SIGNATURE = (
    "0x96ad99819918b5bd58b5ac388e30ca8d4680f72158649de2267b632a6fc43567"
    "1046f637a7a55fe6794299feda22cf7a4bd718bb9d52e88e19750c20c832de89"
)


def v10_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "bt_header_dendrite_hotkey": ALICE,
        "bt_header_dendrite_nonce": str(V10_NONCE),
        "bt_header_dendrite_uuid": V10_UUID,
        "bt_header_dendrite_signature": V10_SIGNATURE,
        "bt_header_dendrite_version": "10005000",
        "bt_header_axon_hotkey": BOB,
        "computed_body_hash": V10_HASH,
        "timeout": "12.0",
    }
    return {**headers, **overrides}


async def verify(headers: dict[str, str], *, store: Any = None, now_ns: int = V10_NONCE + 1_000_000_000, **kw: Any):
    return await legacy_auth.verify(
        legacy_auth.parse_headers(headers),
        received_body_hash=kw.pop("received_body_hash", V10_HASH),
        self_hotkey_ss58=kw.pop("self_hotkey_ss58", BOB),
        nonce_store=store if store is not None else legacy_auth.InMemoryMonotonicNonceStore(),
        now_ns=now_ns,
        **kw,
    )


def test_captured_echo_body_hash_and_empty_hash() -> None:
    # research capture §2.8: Echo(text="hello miner") with required_hash_fields=("text",)
    assert legacy_auth.body_hash({"text": "hello miner"}, ("text",)) == (
        "f0d1ef7ea4d27184281ace119e35c7fc605522e02a040861f9c7ed59dd4199a8"
    )
    assert legacy_auth.body_hash({}, ()) == legacy_auth.EMPTY_BODY_HASH == hashlib.sha3_256(b"").hexdigest()


def test_body_hash_uses_python_str_not_json() -> None:
    values = {"m": [{"role": "user", "n": 1}], "b": True, "f": 1.0, "s": None}
    expected = hashlib.sha3_256(
        "".join(
            hashlib.sha3_256(text.encode()).hexdigest()
            for text in ("[{'role': 'user', 'n': 1}]", "True", "1.0", "None")
        ).encode()
    ).hexdigest()
    assert legacy_auth.body_hash(values, ("m", "b", "f", "s")) == expected
    as_json = {k: json.dumps(v) for k, v in values.items()}
    assert legacy_auth.body_hash(as_json, ("m", "b", "f", "s")) != expected


def test_body_hash_is_the_same_for_long_values_and_does_not_keep_them() -> None:
    long_text = "x" * 100_000
    expected = hashlib.sha3_256(hashlib.sha3_256(long_text.encode()).hexdigest().encode()).hexdigest()
    cached_before = legacy_auth._short_field_digest.cache_info().currsize
    assert legacy_auth.body_hash({"m": long_text}, ("m",)) == expected
    assert legacy_auth._short_field_digest.cache_info().currsize == cached_before  # bounded memory per entry


def test_gateway_body_model_reproduces_the_v10_hash_from_the_wire_json() -> None:
    wire = json.loads(json.dumps({"name": "Inference", "timeout": 12.0, "axon": {}, "text": "", **V10_BODY}))
    parsed = InferenceBody.model_validate(wire)
    assert legacy_auth.body_hash(parsed.model_dump(), InferenceBody.hash_fields) == V10_HASH


async def test_v10_signature_verifies_for_its_axon() -> None:
    caller = await verify(v10_headers())
    assert (caller.hotkey_ss58, caller.nonce_ns, caller.uuid, caller.version) == (ALICE, V10_NONCE, V10_UUID, 10005000)
    assert (
        legacy_auth.signature_message(
            nonce_ns=V10_NONCE, dendrite_hotkey=ALICE, axon_hotkey=BOB, uuid=V10_UUID, body_hash=V10_HASH
        )
        == f"{V10_NONCE}.{ALICE}.{BOB}.{V10_UUID}.{V10_HASH}".encode()
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"received_body_hash": "00" * 32}, AuthErrorCode.BAD_SIGNATURE),  # body altered after signing
        ({"self_hotkey_ss58": ALICE}, AuthErrorCode.WRONG_RECEIVER),  # this axon is not the one named
        ({"now_ns": V10_NONCE + 11 * 10**9}, AuthErrorCode.STALE),  # older than the 10 s window
        ({"now_ns": V10_NONCE - 3 * 10**9}, AuthErrorCode.STALE),  # from the future, beyond the skew
    ],
)
async def test_rejections(change: dict[str, Any], code: AuthErrorCode) -> None:
    with pytest.raises(AuthFailure) as caught:
        await verify(v10_headers(), max_age_s=10.0, allowed_skew_s=2.0, **change)
    assert caught.value.code is code


async def test_signature_binds_this_axon_even_when_the_header_names_it() -> None:
    # Signed for Bob; Alice's axon gets it with the (unsigned) axon header rewritten to Alice.
    with pytest.raises(AuthFailure) as caught:
        await verify(v10_headers(bt_header_axon_hotkey=ALICE), self_hotkey_ss58=ALICE)
    assert caught.value.code is AuthErrorCode.BAD_SIGNATURE


async def test_old_version_header_does_not_switch_the_age_check_off() -> None:
    with pytest.raises(AuthFailure) as caught:
        old = v10_headers(bt_header_dendrite_version="6000000", timeout="99999")
        await verify(old, now_ns=V10_NONCE + 3600 * 10**9)
    assert caught.value.code is AuthErrorCode.STALE


async def test_nonces_must_increase_per_hotkey_and_uuid() -> None:
    keypair = bt.sp_core.Keypair.create_from_uri("//Alice")
    store = legacy_auth.InMemoryMonotonicNonceStore()
    now = V10_NONCE + 10**9

    def headers(nonce: int, uuid: str) -> dict[str, str]:
        return legacy_auth.sign_headers(
            keypair, synapse_name="Inference", axon_hotkey=BOB, computed_body_hash=V10_HASH, uuid=uuid, nonce_ns=nonce
        )

    await verify(headers(V10_NONCE, "u1"), store=store, now_ns=now)
    for nonce in (V10_NONCE, V10_NONCE - 1):
        with pytest.raises(AuthFailure) as caught:
            await verify(headers(nonce, "u1"), store=store, now_ns=now)
        assert caught.value.code is AuthErrorCode.REPLAYED
    await verify(headers(V10_NONCE + 1, "u1"), store=store, now_ns=now)
    await verify(headers(V10_NONCE - 1, "u2"), store=store, now_ns=now)  # another dendrite instance


async def test_bad_signature_does_not_advance_the_nonce() -> None:
    store = legacy_auth.InMemoryMonotonicNonceStore()
    forged = v10_headers(bt_header_dendrite_signature="0x" + "11" * 64)
    with pytest.raises(AuthFailure):
        await verify({**forged, "bt_header_dendrite_nonce": str(V10_NONCE + 5)}, store=store)
    assert len(store) == 0
    await verify(v10_headers(), store=store)


@pytest.mark.parametrize(
    "change",
    [
        {"bt_header_dendrite_hotkey": ""},
        {"bt_header_dendrite_nonce": "12abc"},
        {"bt_header_dendrite_nonce": "-5"},
        {"bt_header_dendrite_nonce": "1\u00b2"},  # a digit to str.isdigit, not to int()
        {"bt_header_dendrite_signature": "0xnothex"},
        {"bt_header_dendrite_uuid": "a.b"},
        {"computed_body_hash": ""},
    ],
)
def test_malformed_headers(change: dict[str, str]) -> None:
    with pytest.raises(AuthFailure) as caught:
        legacy_auth.parse_headers(v10_headers(**change))
    assert caught.value.code is AuthErrorCode.MALFORMED


def test_odd_version_header_is_ignored_not_a_crash() -> None:
    assert legacy_auth.parse_headers(v10_headers(bt_header_dendrite_version="1\u00b2")).version is None


async def test_undecodable_hotkey_is_malformed_not_a_crash() -> None:
    with pytest.raises(AuthFailure) as caught:
        await verify(v10_headers(bt_header_dendrite_hotkey="5notanaddress"))
    assert caught.value.code is AuthErrorCode.MALFORMED


async def test_store_forgets_entries_after_their_ttl() -> None:
    clock = [0.0]
    store = legacy_auth.InMemoryMonotonicNonceStore(clock=lambda: clock[0])
    assert await store.advance("k", 10, ttl_s=5.0)
    assert not await store.advance("k", 10, ttl_s=5.0)
    clock[0] = 6.0
    assert await store.advance("k", 3, ttl_s=5.0)
    for i in range(3000):  # pruning keeps memory bounded
        clock[0] += 1.0
        await store.advance(f"key{i}", 1, ttl_s=5.0)
    assert len(store) < 1100


def random_bodies(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Inference inputs with the characters and numbers where str() and JSON differ most."""
    rng = random.Random(seed)
    alphabet = ["a", "'", '"', "\\", "\n", "\t", "é", "\u2028", "\U0001f642", "\x00", "{", "}", ":", ",", " "]
    bodies = []
    for _ in range(count):
        messages = [
            {
                "role": rng.choice(["system", "user", "assistant"]),
                "content": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))),
            }
            for _ in range(rng.randint(0, 3))
        ]
        bodies.append(
            {
                "messages": messages,
                "max_tokens": rng.randint(1, 4096),
                "temperature": rng.choice([0.0, 1.0, 0.1, 0.7, 1e-05, 1.9999999999999998, rng.random() * 2]),
                "top_p": rng.choice([1.0, 0.95, rng.random()]),
                "top_k": rng.randint(0, 1000),
                "seed": rng.choice([None, 0, 2**63 - 1, rng.randint(0, 2**40)]),
            }
        )
    return bodies


@pytest.mark.legacy
def test_body_hash_matches_stock_v10_on_random_inputs(run_v10: Any) -> None:
    bodies = random_bodies(200)
    results = run_v10({"op": "hashes", "synapses": bodies})
    for body, result in zip(bodies, results, strict=True):
        parsed = InferenceBody.model_validate(json.loads(result["body"]))
        assert legacy_auth.body_hash(parsed.model_dump(), InferenceBody.hash_fields) == result["body_hash"], body
