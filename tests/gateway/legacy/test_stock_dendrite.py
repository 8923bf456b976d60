"""The stock bittensor 10.5.0 ``Dendrite`` queries a live axongate gateway, as a v10 validator would.

One gateway (fake service, policy with a deny list) and one driver run in ``.venv-legacy`` cover
every scenario; each test asserts on what the dendrite itself concluded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway import PolicyConfig, StaticMetagraphView

pytestmark = [pytest.mark.legacy, pytest.mark.slow]

SCENARIOS = [
    "unary", "stream", "capabilities", "forged", "stale", "stale_old_version", "future", "replay",
    "other_axon", "blacklisted", "unknown_synapse", "invalid_request", "concurrent",
]  # fmt: skip
REQUEST_FIELDS = {
    "messages": [{"role": "user", "content": "hello 'miner' \"é\""}],
    "max_tokens": 6,
    "temperature": 0.7,
    "top_p": 1.0,
    "top_k": 0,
    "seed": 5,
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    return {}


@pytest.fixture
async def dendrite_results(
    outcomes: dict[str, Any],
    start_gateway: Any,
    run_v10: Any,
    kit: Any,
    validator_keypair: Any,
    miner_keypair: Any,
    stranger_keypair: Any,
    denied_keypair: Any,
) -> dict[str, Any]:
    """Run every scenario once per module (the driver costs a few seconds of bittensor 10 start-up)."""
    if not outcomes:
        denied = denied_keypair.ss58_address
        live = await start_gateway(
            kit.FakeService(chunks=kit.make_chunks(3, tokens_per_chunk=2)),
            policy_config=PolicyConfig(
                deny_hotkeys=frozenset({denied}), rate_per_s=1000.0, burst=1000, max_concurrent_per_hotkey=256
            ),
            peers=StaticMetagraphView.of_validators([validator_keypair.ss58_address, denied]),
        )
        command = {
            "op": "scenarios",
            "port": live.server.port,
            "miner": miner_keypair.ss58_address,
            "stranger": stranger_keypair.ss58_address,
            "names": SCENARIOS,
        }
        # in a worker thread: the gateway serves on this test's event loop meanwhile
        outcomes.update(await asyncio.to_thread(run_v10, command))
        outcomes["_service_requests"] = live.service.requests
    return outcomes


def assert_rejected(result: dict[str, Any], status: int, *phrases: str) -> None:
    assert not result["is_success"]
    assert result["status_code"] == status, result
    for phrase in phrases:
        assert phrase in (result["status_message"] or ""), result
    assert result.get("text", "") == "" and result.get("token_ids", []) == []


async def test_unary_call_succeeds_with_outputs_and_request_fields_preserved(dendrite_results: Any) -> None:
    result = dendrite_results["unary"]
    assert result["is_success"], result
    assert (result["status_code"], result["status_message"]) == (200, "Success")
    assert result["token_ids"] == [100, 101, 102, 103, 104, 105]
    assert result["text"] == "t100 t101 t102 t103 t104 t105 "
    assert result["logprobs"] == [-0.5] * 6 and result["ranks"] == [1] * 6
    assert result["finish_reason"] == "length"
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 6}
    assert result["model"] == "fake/echo-1"
    assert result["axon_process_time"] is not None
    assert {k: result[k] for k in REQUEST_FIELDS} == REQUEST_FIELDS
    served = dendrite_results["_service_requests"][0]
    assert (served.max_tokens, served.temperature, served.seed, served.stream) == (6, 0.7, 5, False)
    assert served.messages[0].content == REQUEST_FIELDS["messages"][0]["content"]


async def test_streaming_call_yields_chunks_then_the_filled_synapse(dendrite_results: Any) -> None:
    result = dendrite_results["stream"]
    assert result["final_type"] == "InferenceStream"
    assert [chunk["token_ids"] for chunk in result["chunks"]] == [[100, 101], [102, 103], [104, 105]]
    assert result["chunks"][-1]["finish_reason"] == "length"
    assert result["is_success"], result
    assert result["token_ids"] == [100, 101, 102, 103, 104, 105]
    assert result["text"] == "t100 t101 t102 t103 t104 t105 "
    assert result["finish_reason"] == "length" and result["stream_error"] is None
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 6}
    assert {k: result[k] for k in REQUEST_FIELDS} == REQUEST_FIELDS
    assert any(r.stream for r in dendrite_results["_service_requests"])


async def test_capabilities_call(dendrite_results: Any) -> None:
    result = dendrite_results["capabilities"]
    assert result["is_success"], result
    assert (result["model"], result["engine"], result["weights_sha256"]) == ("fake/echo-1", "fake", "ab" * 32)


@pytest.mark.parametrize(
    ("scenario", "phrase"),
    [
        ("forged", "signature does not verify"),
        ("stale", "older than"),
        ("stale_old_version", "older than"),  # the stock axon skips the age check for old versions
        ("future", "in the future"),
        ("other_axon", "different axon"),
    ],
)
async def test_unverifiable_requests_get_401(dendrite_results: Any, scenario: str, phrase: str) -> None:
    assert_rejected(dendrite_results[scenario], 401, "Not Verified", phrase)


async def test_replayed_nonce_gets_401_after_the_first_use(dendrite_results: Any) -> None:
    replay = dendrite_results["replay"]
    assert replay["first"]["is_success"], replay["first"]
    assert_rejected(replay["second"], 401, "nonce is not newer")


async def test_blacklisted_hotkey_gets_403(dendrite_results: Any) -> None:
    assert_rejected(dendrite_results["blacklisted"], 403, "deny list")


async def test_unknown_synapse_gets_404_and_invalid_request_422(dendrite_results: Any) -> None:
    assert_rejected(dendrite_results["unknown_synapse"], 404, "Synapse name 'Nope' not found")
    assert_rejected(dendrite_results["invalid_request"], 422, "messages")


async def test_concurrent_calls_from_one_dendrite_all_succeed(dendrite_results: Any) -> None:
    assert dendrite_results["concurrent"] == {"statuses": [200], "ok": 64}
