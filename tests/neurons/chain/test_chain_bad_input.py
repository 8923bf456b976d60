"""Bad input gets a clear error naming the problem, and the chain file is left exactly as it was."""

from __future__ import annotations

import math

import pytest
from bittensor._generated import calls
from chain_helpers import NETUID, Subnet, chain_state, make_subnet

from neurons.chain import ChainErrorCode, ChainWriteError
from neurons.chain.sdk import SdkChain


@pytest.mark.parametrize(
    ("weights", "needle"),
    [
        ({7: 1.0, 1: 1.0}, "not registered on subnet 1: [7]"),
        ({1: 0.0, 2: 0.0}, "all weights are zero"),
        ({}, "no weights given"),
        ({1: -1.0}, "non-negative; uids [1]"),
        ({1: math.nan}, "finite"),
        ({-3: 1.0}, "uids must be integers in 0..65535"),
    ],
)
async def test_invalid_weights_are_refused(chain: SdkChain, subnet: Subnet, weights: dict, needle: str) -> None:
    before = chain_state(subnet.path)
    result = await chain.set_weights(subnet.validator, weights)
    assert not result.success
    assert result.error is ChainErrorCode.INVALID_WEIGHTS
    assert needle in result.message
    with pytest.raises(ChainWriteError, match="invalid_weights"):
        result.raise_for_failure()
    assert chain_state(subnet.path) == before


@pytest.mark.parametrize(
    ("dests", "values", "name", "needle"),
    [
        ([1, 1], [65535, 100], "DuplicateUids", "[1]"),
        ([1, 9], [65535, 100], "UidVecContainInvalidOne", "[9]"),
        ([1, 2], [65535], "WeightVecNotEqualSize", "2 uids but 1 weights"),
        ([1], [0], "WeightVecLengthIsLow", "0 non-zero weights"),
    ],
)
async def test_chain_rejects_malformed_weight_extrinsics(
    chain: SdkChain, subnet: Subnet, dests: list, values: list, name: str, needle: str
) -> None:
    """Raw extrinsics skip every client-side check; the chain itself must refuse them."""
    before = chain_state(subnet.path)
    raw = calls.SubtensorModule.set_mechanism_weights(
        netuid=NETUID, mecid=0, dests=dests, weights=values, version_key=0
    )
    result = await chain.client.submit_call(raw, subnet.validator, signer="hotkey", wait_for_finalization=False)
    assert not result.success
    assert result.error is not None and result.error.name == name
    assert needle in result.message
    assert chain_state(subnet.path) == before


async def test_rate_limited_call_writes_nothing(chain: SdkChain, subnet: Subnet) -> None:
    assert (await chain.set_weights(subnet.validator, {1: 1.0})).success
    before = chain_state(subnet.path)
    result = await chain.set_weights(subnet.validator, {2: 1.0})
    assert result.error is ChainErrorCode.RATE_LIMITED
    assert "Retry in ~5 blocks" in result.message
    assert chain_state(subnet.path) == before


@pytest.mark.parametrize(
    ("ip", "port", "certificate", "needle"),
    [
        ("not-an-ip", 8091, None, "'not-an-ip' is not an IPv4 or IPv6 address"),
        ("300.1.1.1", 8091, None, "not an IPv4 or IPv6"),
        ("0.0.0.0", 8091, None, "cannot be dialled"),
        ("127.0.0.1", 0, None, "port must be an integer in 1..65535, got 0"),
        ("127.0.0.1", 70000, None, "got 70000"),
        ("127.0.0.1", 8091, b"\x01" + bytes(65), "certificate must be bytes"),
        ("127.0.0.1", 8091, b"\x01", "certificate must be bytes"),
    ],
)
async def test_malformed_endpoint_is_refused(
    chain: SdkChain, subnet: Subnet, ip: str, port: int, certificate: bytes | None, needle: str
) -> None:
    before = chain_state(subnet.path)
    result = await chain.serve_axon(subnet.miners[0], ip, port, certificate=certificate)
    assert result.error is ChainErrorCode.INVALID_ENDPOINT
    assert needle in result.message
    assert chain_state(subnet.path) == before


@pytest.mark.parametrize(
    ("ip", "ip_type", "port", "name"),
    [(2130706433, 5, 8091, "InvalidIpType"), (2**40, 4, 8091, "InvalidIpAddress"), (2130706433, 4, 0, "InvalidPort")],
)
async def test_chain_rejects_malformed_serve_extrinsics(
    chain: SdkChain, subnet: Subnet, ip: int, ip_type: int, port: int, name: str
) -> None:
    before = chain_state(subnet.path)
    raw = calls.SubtensorModule.serve_axon(
        netuid=NETUID, version=1, ip=ip, port=port, ip_type=ip_type, protocol=4, placeholder1=0, placeholder2=0
    )
    result = await chain.client.submit_call(raw, subnet.miners[0], signer="hotkey", wait_for_finalization=False)
    assert result.error is not None and result.error.name == name
    assert chain_state(subnet.path) == before


async def test_public_ips_only_when_the_subnet_says_so(tmp_path, wallets) -> None:
    import bittensor as bt

    from neurons.chain import ChainConfig
    from neurons.chain.localnet import LocalnetSubstrate

    subnet = make_subnet(tmp_path, wallets, allow_internal_ips=False, serving_rate_limit=50)
    client = bt.Client("local", substrate=LocalnetSubstrate(subnet.path, now=subnet.clock))
    async with SdkChain(client, ChainConfig(localnet_path=subnet.path), label="strict") as chain:
        await client.connect()
        private = await chain.serve_axon(subnet.miners[0], "10.0.0.5", 8091)
        assert private.error is ChainErrorCode.INVALID_ENDPOINT and private.error_name == "InvalidIpAddress"
        assert "internal address" in private.message
        assert (await chain.serve_axon(subnet.miners[0], "93.184.216.34", 8091)).success
        moved = await chain.serve_axon(subnet.miners[0], "93.184.216.34", 8092)
        assert moved.error is ChainErrorCode.RATE_LIMITED and moved.error_name == "ServingRateLimitExceeded"


async def test_subnet_rules_on_weights(tmp_path, wallets) -> None:
    import bittensor as bt

    from neurons.chain import ChainConfig
    from neurons.chain.localnet import LocalnetSubstrate

    subnet = make_subnet(tmp_path, wallets, max_weight_limit=0.5, weights_version_key=7, min_allowed_weights=2)
    client = bt.Client("local", substrate=LocalnetSubstrate(subnet.path, now=subnet.clock))
    await client.connect()
    async with SdkChain(client, ChainConfig(localnet_path=subnet.path, weights_version_key=7), label="rules") as chain:
        before = chain_state(subnet.path)
        stale = await chain.set_weights(subnet.validator, {1: 1.0, 2: 1.0}, version_key=6)
        assert stale.error is ChainErrorCode.VERSION_KEY and "older than the subnet's 7" in stale.message
        too_few = await chain.set_weights(subnet.validator, {1: 1.0})
        assert too_few.error is ChainErrorCode.INVALID_WEIGHTS and "at least 2" in too_few.message
        no_permit = await chain.set_weights(subnet.miners[0], {2: 1.0, 3: 1.0})
        assert no_permit.error is ChainErrorCode.NO_VALIDATOR_PERMIT
        raw = calls.SubtensorModule.set_mechanism_weights(
            netuid=NETUID, mecid=0, dests=[1, 2], weights=[65535, 1000], version_key=7
        )
        concentrated = await client.submit_call(raw, subnet.validator, signer="hotkey", wait_for_finalization=False)
        assert concentrated.error is not None and concentrated.error.name == "MaxWeightExceeded"
        assert chain_state(subnet.path) == before

        clipped = await chain.set_weights(subnet.validator, {1: 9.0, 2: 1.0, 3: 1.0})  # the SDK clips to 0.5
        assert clipped.success, clipped.message
        assert max((await chain.weights())[0].values()) <= 0.5 + 1e-4
