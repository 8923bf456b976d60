"""Fixtures for the chain tests: a local chain on a controllable clock, wallets, and an SdkChain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import bittensor as bt
import pytest
from chain_helpers import NETUID, Subnet, make_subnet

from neurons.chain import ChainConfig
from neurons.chain.localnet import LocalnetSubstrate
from neurons.chain.sdk import SdkChain
from neurons.wallets import create_wallet


@pytest.fixture(scope="session")
def wallets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bt.Wallet]:
    root = tmp_path_factory.mktemp("wallets")
    return {name: create_wallet(name, "hk", root) for name in ("validator", "miner0", "miner1", "miner2", "outsider")}


@pytest.fixture
def subnet(tmp_path: Path, wallets: dict[str, bt.Wallet]) -> Subnet:
    """Subnet 1: uid 0 is a validator (1000 alpha, permit), uids 1-3 are miners."""
    return make_subnet(tmp_path, wallets)


@pytest.fixture
async def chain(subnet: Subnet) -> AsyncIterator[SdkChain]:
    """An SdkChain over the real SDK client, reading the subnet's clock."""
    client = bt.Client("local", substrate=LocalnetSubstrate(subnet.path, now=subnet.clock))
    await client.connect()
    sdk_chain = SdkChain(client, ChainConfig(netuid=NETUID, localnet_path=subnet.path), label="test chain")
    yield sdk_chain
    await sdk_chain.aclose()
