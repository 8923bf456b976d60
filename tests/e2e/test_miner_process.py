"""A real miner process on SmolLM2: signed streaming completions, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from neurons.chain import open_chain
from neurons.localsubnet import LocalSubnet, MinerSpec, SubnetSpec
from neurons.models import resolve_model
from neurons.settings import WalletConfig
from neurons.wallets import load_wallet
from protocol.client import MinerClient, MinerTarget
from protocol.synapses import ChatMessage, FinishReason, InferenceRequest

pytestmark = pytest.mark.slow


async def _served_miner(subnet: LocalSubnet) -> tuple[MinerTarget, object]:
    """Start the miner and wait until its endpoint is on chain; returns the target and the validator keypair."""
    subnet.spawn("miner")
    async with await open_chain(subnet.chain_config(), subnet.spec.home) as chain:
        for _ in range(600):
            subnet.check_alive()
            neuron = (await chain.metagraph()).by_uid(subnet.uids["miner"])
            if neuron is not None and neuron.port:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the miner never published its endpoint")
    validator = load_wallet(WalletConfig(name="validator", hotkey="default", path=subnet.wallet_path))
    return MinerTarget(neuron.ip, neuron.port, neuron.hotkey), validator.hotkey


@pytest.fixture
def smollm2_miner(tmp_path: Path, model_home: Path) -> LocalSubnet:
    model = resolve_model("smollm2", model_home, progress=False)
    spec = SubnetSpec(
        home=model_home,
        workdir=tmp_path / "subnet",
        validator_model=str(model),
        miners=(MinerSpec("miner", str(model)),),
        torch_threads=2,
        extra_miner={"gateway": {"shutdown_grace_s": 300.0}},
    )
    subnet = LocalSubnet(spec)
    subnet.setup()
    yield subnet
    subnet.stop()


async def test_signed_stream_from_a_real_miner(smollm2_miner: LocalSubnet) -> None:
    target, keypair = await _served_miner(smollm2_miner)
    request = InferenceRequest(
        messages=[ChatMessage(role="user", content="Name three colours of the rainbow.")],
        max_tokens=24,
        temperature=0.0,
        stream=True,
    )
    async with MinerClient(keypair) as client:
        result = await client.infer(target, request, timeout_s=120)
    response = result.raise_for_failure()
    assert 1 <= len(response.token_ids) <= 24
    assert len(response.logprobs) == len(response.ranks) == len(response.token_ids)
    assert all(rank == 1 for rank in response.ranks)  # greedy: every token is the argmax
    assert response.text.strip()
    # The first chunk arrives while generation is still running: long before the last one.
    first_s, last_s = result.chunk_arrivals[0][0], result.chunk_arrivals[-1][0]
    assert len(result.chunk_arrivals) >= len(response.token_ids) // 2
    assert first_s < 0.5 * last_s


async def test_sigterm_finishes_the_stream_in_flight_then_exits_zero(smollm2_miner: LocalSubnet) -> None:
    target, keypair = await _served_miner(smollm2_miner)
    request = InferenceRequest(
        messages=[ChatMessage(role="user", content="Write a short story about a lighthouse.")],
        max_tokens=20,
        temperature=0.0,
        stream=True,
    )
    proc = next(p for p in smollm2_miner._processes if p.name == "miner")
    async with MinerClient(keypair) as client:
        query = asyncio.create_task(client.infer(target, request, timeout_s=120))
        await asyncio.sleep(1.5)  # the stream is under way
        proc.popen.send_signal(signal.SIGTERM)
        result = await query
        assert result.ok, result.message
        assert result.response is not None and result.response.finish_reason in (FinishReason.LENGTH, FinishReason.STOP)
        assert await asyncio.to_thread(proc.popen.wait, 60) == 0
        after = await client.infer(target, request.model_copy(update={"max_tokens": 4}), timeout_s=10)
    assert not after.ok and after.error is not None and after.error.value == "connect"
