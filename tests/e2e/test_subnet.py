"""The whole subnet as separate processes: weights on chain must rank honest > slow > cheater."""

from __future__ import annotations

import asyncio
import json

import pytest

from neurons.chain import open_chain
from neurons.localsubnet import LocalSubnet

pytestmark = pytest.mark.slow


async def test_weights_on_chain_rank_honest_over_slow_over_cheater(tiny_subnet: LocalSubnet) -> None:
    subnet = tiny_subnet
    subnet.start()
    report = await subnet.wait_for_weight_sets(2, timeout_s=300)

    async with await open_chain(subnet.chain_config(), subnet.spec.home) as chain:
        weights = (await chain.weights())[subnet.uids["validator"]]
        metagraph = await chain.metagraph()
    honest, slow, cheater = (subnet.uids[n] for n in ("honest", "slow", "cheater"))

    rows = report["uids"]
    context = f"weights {weights}, report {rows}, logs in {subnet.logs}"
    assert weights.get(cheater, 0.0) == 0.0, context
    assert weights[honest] > weights[slow] > 0.0, context
    assert rows[str(cheater)]["verified"] == 0 and rows[str(cheater)]["queries"] >= 1
    assert rows[str(honest)]["verified"] == rows[str(honest)]["queries"]
    assert {n.uid for n in metagraph.neurons if n.port} == {honest, slow, cheater}
    async with await open_chain(subnet.chain_config(), subnet.spec.home) as chain:
        published = [await chain.certificate(n.hotkey) for n in metagraph.neurons if n.port]
    tls = subnet.spec.extra_miner["gateway"]["tls_enabled"]
    assert all(published) if tls else not any(published)


@pytest.mark.parametrize("tiny_subnet", ["http"], indirect=True)
async def test_validator_killed_mid_step_resumes_from_last_completed_step(tiny_subnet: LocalSubnet) -> None:
    subnet = tiny_subnet
    state_path = subnet.validator_dir / "state.json"
    subnet.start()
    await subnet.wait_for_weight_sets(1, timeout_s=300)
    for _ in range(600):  # a few steps, so a score restarted from zero could not look like a resumed one
        report = subnet.report()
        if report and report["step"] >= 3:
            break
        subnet.check_alive()
        await asyncio.sleep(0.2)
    # The loop is busy (step interval 0.5 s, each step queries three miners): kill it mid-flight.
    await asyncio.sleep(0.3)
    subnet.kill("validator")
    saved = json.loads(state_path.read_text())
    assert saved["step"] >= 1

    subnet.spawn("validator", "--max-steps", "1")
    assert subnet.wait("validator", timeout_s=120) == 0
    resumed = json.loads(state_path.read_text())

    assert resumed["step"] == saved["step"] + 1
    log = (subnet.logs / "validator.log").read_text()
    assert f"resuming at step {saved['step']}" in log
    alpha = 0.3
    for uid, before in saved["miners"].items():
        after = resumed["miners"][uid]
        assert after["hotkey"] == before["hotkey"]
        # one EMA update from the saved score: new = alpha * reward + (1 - alpha) * old, reward in [0, 1]
        low = (1 - alpha) * before["score"]
        assert low - 1e-9 <= after["score"] <= low + alpha + 1e-9
    honest = str(subnet.uids["honest"])
    assert saved["miners"][honest]["score"] > alpha  # a fresh start could not reach this after one step
