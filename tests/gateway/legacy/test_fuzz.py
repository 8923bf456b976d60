"""Whatever a caller puts in the legacy headers and body, the answer is a 4xx in the legacy shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, Policy, PolicyConfig, StaticMetagraphView, create_app

HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["messages", "max_tokens", "temperature", "seed", "axon", "dendrite", "name"]), JSON_VALUES
    ).map(lambda d: json.dumps(d).encode()),
)
LEGACY_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "bt_header_dendrite_hotkey",
            "bt_header_dendrite_nonce",
            "bt_header_dendrite_uuid",
            "bt_header_dendrite_signature",
            "bt_header_dendrite_version",
            "bt_header_axon_hotkey",
            "computed_body_hash",
            "timeout",
        ]
    ),
    HEADER_TEXT,
    min_size=1,
).map(lambda headers: {"bt_header_dendrite_hotkey": "x", **headers})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(["/Inference", "/InferenceStream", "/Capabilities", "/Nope"]),
    headers=LEGACY_HEADERS,
    body=BODIES,
)
def test_arbitrary_legacy_requests_get_a_legacy_4xx(
    kit: Any, miner_keypair: Any, validator_keypair: Any, path: str, headers: dict[str, str], body: bytes
) -> None:
    app = create_app(
        kit.FakeService(),
        hotkey_ss58=miner_keypair.ss58_address,
        config=GatewayConfig(port=0),
        policy=Policy(PolicyConfig(), StaticMetagraphView.of_validators([validator_keypair.ss58_address])),
        registry=CollectorRegistry(),
    )

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            encoded = {key: value.encode("latin-1") for key, value in headers.items()}
            return await http.post(path, content=body, headers=encoded)

    response = asyncio.run(send())
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["bt_header_axon_status_code"] == str(response.status_code)
    assert isinstance(response.json()["message"], str)
