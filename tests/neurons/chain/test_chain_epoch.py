"""The local epoch (reduced Yuma) and commit-reveal weights on the local chain."""

from __future__ import annotations

import bittensor as bt
import pytest
from chain_helpers import NETUID, chain_state, make_subnet

from neurons.chain import ChainConfig
from neurons.chain._epoch import compute_epoch
from neurons.chain.localnet import LocalnetSubstrate
from neurons.chain.sdk import SdkChain


def test_consensus_clips_an_outlier_validator() -> None:
    # Two validators with 3/4 of the stake agree on miner 10; a 1/4-stake validator pushes miner 11.
    stakes = {0: 300.0, 1: 100.0}
    rows = {0: {10: 1.0}, 1: {11: 1.0}}
    scores = compute_epoch(stakes, rows)
    assert scores.consensus == {10: 1.0, 11: 0.0}
    assert scores.incentive == {10: 1.0, 11: 0.0}
    assert scores.dividends == {0: 1.0, 1: 0.0}


def test_agreeing_validators_share_dividends_by_stake() -> None:
    scores = compute_epoch({0: 300.0, 1: 100.0}, {0: {10: 1.0, 11: 1.0}, 1: {10: 1.0, 11: 1.0}})
    assert scores.incentive == pytest.approx({10: 0.5, 11: 0.5})
    assert scores.dividends == pytest.approx({0: 0.75, 1: 0.25})


def test_no_validators_no_scores() -> None:
    assert compute_epoch({0: 0.0}, {0: {1: 1.0}}).incentive == {}
    assert compute_epoch({0: 5.0}, {}).dividends == {}


async def test_commit_reveal_subnet_stores_a_timelocked_commit(tmp_path, wallets) -> None:
    subnet = make_subnet(tmp_path, wallets, commit_reveal=True)
    client = bt.Client("local", substrate=LocalnetSubstrate(subnet.path, now=subnet.clock))
    await client.connect()
    async with SdkChain(client, ChainConfig(localnet_path=subnet.path), label="cr") as chain:
        result = await chain.set_weights(subnet.validator, {1: 1.0, 2: 1.0})
        assert result.success, result.message
        commits = await client.read("timelocked_weight_commits", netuid=NETUID)
        [(_epoch, [commit])] = commits.items()
        assert commit["hotkey"] == subnet.validator.hotkey.ss58_address
        assert commit["commit_block"] == result.block
        assert await chain.weights() == {}  # never revealed: the local chain has no drand beacon
        assert await chain.blocks_since_last_update(0) == 0
        before = chain_state(subnet.path)
        assert (await chain.set_weights(subnet.validator, {1: 1.0})).error_name is None  # SDK preflight
        assert chain_state(subnet.path) == before
