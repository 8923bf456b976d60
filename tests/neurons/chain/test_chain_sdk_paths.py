"""The SDK's own code paths against the local chain: metagraph, weights, serving, registration, signatures."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt
import pytest
from bittensor._generated import calls
from chain_helpers import NETUID, Subnet, chain_state

from neurons.chain import ChainConfig, ChainErrorCode, open_chain
from neurons.chain.localnet import LocalnetParams, init_localnet
from neurons.chain.sdk import SdkChain
from protocol.errors import ConfigError


async def test_metagraph_reports_registered_neurons(chain: SdkChain, subnet: Subnet) -> None:
    graph = await chain.metagraph()

    assert graph.netuid == NETUID
    assert graph.block == await chain.block()
    assert [n.uid for n in graph.neurons] == [0, 1, 2, 3]
    validator = graph.by_hotkey(subnet.validator.hotkey.ss58_address)
    assert validator is not None
    assert (validator.uid, validator.stake, validator.validator_permit) == (0, 1000.0, True)
    assert validator.coldkey == subnet.validator.coldkeypub.ss58_address
    assert [n.uid for n in graph.validators()] == [0]
    assert graph.serving() == ()


async def test_set_weights_then_rate_limited_then_read_back(chain: SdkChain, subnet: Subnet) -> None:
    first = await chain.set_weights(subnet.validator, {1: 1.0, 2: 3.0})
    assert first.success, first.message
    assert first.block == await chain.block()
    assert await chain.blocks_since_last_update(0) == 0

    second = await chain.set_weights(subnet.validator, {1: 1.0, 3: 1.0})
    assert not second.success
    assert second.error is ChainErrorCode.RATE_LIMITED
    assert "rate limit is 5 blocks" in second.message

    weights = await chain.weights()
    assert set(weights) == {0}
    assert weights[0][1] == pytest.approx(0.25, abs=1e-4)
    assert weights[0][2] == pytest.approx(0.75, abs=1e-4)

    subnet.clock.advance_blocks(await chain.weights_rate_limit())
    third = await chain.set_weights(subnet.validator, {1: 1.0, 3: 1.0})
    assert third.success, third.message
    assert (await chain.weights())[0] == {1: 0.5, 3: 0.5}


async def test_chain_enforces_rate_limit_without_the_sdk_preflight(chain: SdkChain, subnet: Subnet) -> None:
    assert (await chain.set_weights(subnet.validator, {1: 1.0})).success
    raw = calls.SubtensorModule.set_mechanism_weights(netuid=NETUID, mecid=0, dests=[2], weights=[65535], version_key=0)
    result = await chain.client.submit_call(raw, subnet.validator, signer="hotkey", wait_for_finalization=False)
    assert not result.success
    assert result.error is not None and result.error.name == "SettingWeightsTooFast"
    assert (await chain.weights())[0] == {1: 1.0}


async def test_serve_axon_and_tls_certificate(chain: SdkChain, subnet: Subnet) -> None:
    miner, tls_miner = subnet.miners[0], subnet.miners[1]
    served = await chain.serve_axon(miner, "127.0.0.1", 8091)
    assert served.success, served.message
    certificate = b"\x01" + tls_miner.hotkey.public_key
    assert (await chain.serve_axon(tls_miner, "2001:db8::1", 443, certificate=certificate)).success

    graph = await chain.metagraph()
    assert [(n.uid, n.endpoint, n.protocol) for n in graph.serving()] == [
        (1, "127.0.0.1:8091", 4),
        (2, "[2001:db8::1]:443", 4),
    ]
    assert await chain.certificate(tls_miner.hotkey.ss58_address) == certificate
    assert await chain.certificate(miner.hotkey.ss58_address) is None

    again = await chain.serve_axon(miner, "127.0.0.1", 8091)
    assert again.success and again.message == "endpoint already published"


async def test_registration_checks(chain: SdkChain, subnet: Subnet) -> None:
    assert await chain.uid_for_hotkey(subnet.miners[2].hotkey.ss58_address) == 3
    assert await chain.uid_for_hotkey(subnet.outsider.hotkey.ss58_address) is None
    assert await chain.require_uid(subnet.miners[2].hotkey.ss58_address) == 3
    with pytest.raises(ConfigError, match=f"{subnet.outsider.hotkey.ss58_address} is not registered on netuid"):
        await chain.require_uid(subnet.outsider.hotkey.ss58_address)

    before = chain_state(subnet.path)
    weights = await chain.set_weights(subnet.outsider, {1: 1.0})
    served = await chain.serve_axon(subnet.outsider, "127.0.0.1", 9000)
    raw = calls.SubtensorModule.serve_axon(
        netuid=NETUID, version=1, ip=2130706433, port=9000, ip_type=4, protocol=4, placeholder1=0, placeholder2=0
    )
    on_chain = await chain.client.submit_call(raw, subnet.outsider, signer="hotkey", wait_for_finalization=False)

    assert weights.error is ChainErrorCode.NOT_REGISTERED
    assert served.error is ChainErrorCode.NOT_REGISTERED
    assert subnet.outsider.hotkey.ss58_address in served.message
    assert on_chain.error is not None and on_chain.error.name == "HotKeyNotRegisteredInNetwork"
    assert chain_state(subnet.path) == before


class ImpostorSigner:
    """Claims the validator's hotkey address but signs with another key."""

    crypto_type = 1

    def __init__(self, claimed: bt.Wallet, actual: bt.Wallet) -> None:
        self.ss58_address = claimed.hotkey.ss58_address
        self.public_key = claimed.hotkey.public_key
        self._actual = actual.hotkey

    def sign(self, payload: bytes) -> bytes:
        return self._actual.sign(payload)


async def test_extrinsic_signed_by_wrong_key_is_rejected(chain: SdkChain, subnet: Subnet) -> None:
    before = chain_state(subnet.path)
    result = await chain.set_weights(ImpostorSigner(subnet.validator, subnet.outsider), {1: 1.0})

    assert not result.success
    assert result.error is ChainErrorCode.BAD_SIGNATURE
    assert result.error_name == "BadProof"
    assert subnet.validator.hotkey.ss58_address in result.message
    assert chain_state(subnet.path) == before
    assert (await chain.set_weights(subnet.validator, {1: 1.0})).success  # the real key still works


async def test_epoch_scores_follow_the_validators_weights(chain: SdkChain, subnet: Subnet) -> None:
    assert (await chain.set_weights(subnet.validator, {1: 1.0, 2: 3.0})).success
    graph = await chain.metagraph()
    assert all(n.incentive == 0 for n in graph.neurons)  # no epoch has run yet

    subnet.clock.advance_blocks(10)
    graph = await chain.metagraph()
    incentives = {n.uid: round(n.incentive, 3) for n in graph.neurons}
    assert incentives == {0: 0.0, 1: 0.25, 2: 0.75, 3: 0.0}
    assert graph.by_uid(0) is not None and round(graph.by_uid(0).dividends, 3) == 1.0


async def test_blocks_advance_with_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "fast.sqlite"
    init_localnet(path, LocalnetParams(block_time_s=0.1))
    async with await open_chain(ChainConfig(localnet_path=path), tmp_path) as chain:
        start = await chain.block()
        header = await chain.client.wait_for_block(start + 2, timeout=10)
        assert header.number == start + 2
        assert await chain.block() >= start + 2
        info = await chain.client.block_info(start + 1)
        assert info is not None and info.number == start + 1
        assert await chain.client.block_time() == 0.1


def test_localnet_implements_every_substrate_member() -> None:
    from bittensor._substrate import Substrate

    from neurons.chain.localnet import LocalnetSubstrate

    members = {name for name in vars(Substrate) if not name.startswith("_")} | set(Substrate.__annotations__)
    missing = sorted(m for m in members if not hasattr(LocalnetSubstrate, m) and m != "token_symbols")
    assert missing == []
    assert LocalnetSubstrate(Path("unused")).token_symbols == {}


async def test_only_unreachable_chain_is_retryable(subnet: Subnet) -> None:
    from neurons.chain.localnet import LocalnetSubstrate

    client = bt.Client("local", substrate=LocalnetSubstrate(subnet.path, now=subnet.clock))
    await client.connect()
    impatient = ChainConfig(localnet_path=subnet.path, write_timeout_s=1e-6)
    async with SdkChain(client, impatient, label="impatient") as chain:
        timed_out = await chain.set_weights(subnet.validator, {1: 1.0})
        assert timed_out.error is ChainErrorCode.UNAVAILABLE and timed_out.retryable
        assert "timed out" in timed_out.message and "may still be included" in timed_out.message
    async with SdkChain(client, ChainConfig(localnet_path=subnet.path), label="patient") as chain:
        await client.connect()
        subnet.clock.advance_blocks(10)
        assert (await chain.set_weights(subnet.validator, {1: 1.0})).success
        limited = await chain.set_weights(subnet.validator, {1: 1.0})
        assert limited.error is ChainErrorCode.RATE_LIMITED and not limited.retryable
