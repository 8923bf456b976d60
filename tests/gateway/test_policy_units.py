"""Policy and stores in isolation: list/stake/permit rules, token buckets with an injected clock."""

from __future__ import annotations

import pytest

import gateway
from gateway import InMemoryNonceStore, InMemoryRateLimitStore, PeerInfo, Policy, PolicyConfig, StaticMetagraphView
from gateway._errors import GatewayError

PEERS = StaticMetagraphView(
    {
        "rich-validator": PeerInfo(uid=0, stake=5000.0, validator_permit=True),
        "poor-validator": PeerInfo(uid=1, stake=10.0, validator_permit=True),
        "rich-miner": PeerInfo(uid=2, stake=5000.0, validator_permit=False),
    }
)


@pytest.mark.parametrize(
    ("config", "hotkey", "error"),
    [
        (PolicyConfig(), "rich-validator", None),
        (PolicyConfig(), "nobody", "hotkey_not_registered"),
        (PolicyConfig(require_registered=False), "nobody", None),
        (PolicyConfig(require_registered=False, min_stake=1.0), "nobody", "hotkey_not_registered"),
        (PolicyConfig(min_stake=100.0), "poor-validator", "insufficient_stake"),
        (PolicyConfig(min_stake=100.0), "rich-miner", None),
        (PolicyConfig(require_validator_permit=True), "rich-miner", "no_validator_permit"),
        (PolicyConfig(deny_hotkeys=frozenset({"rich-validator"})), "rich-validator", "hotkey_denied"),
        (PolicyConfig(allow_hotkeys=frozenset({"poor-validator"})), "rich-validator", "hotkey_not_allowed"),
        (PolicyConfig(allow_hotkeys=frozenset({"poor-validator"}), min_stake=100), "poor-validator", "insufficient"),
    ],
)
async def test_identity_rules(config: PolicyConfig, hotkey: str, error: str | None) -> None:
    policy = Policy(config, PEERS)
    if error is None:
        (await policy.admit(hotkey)).release()
        return
    with pytest.raises(GatewayError) as caught:
        await policy.admit(hotkey)
    assert caught.value.status == 403 and caught.value.code.startswith(error)


async def test_token_bucket_refills_at_the_configured_rate() -> None:
    now = [100.0]
    store = InMemoryRateLimitStore(clock_s=lambda: now[0])
    assert [await store.take("hk", rate_per_s=2.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await store.take("hk", rate_per_s=2.0, burst=3) == pytest.approx(0.5)
    now[0] += 0.5
    assert await store.take("hk", rate_per_s=2.0, burst=3) == 0.0
    assert await store.take("other", rate_per_s=2.0, burst=3) == 0.0  # buckets are per key


async def test_rate_store_drops_refilled_buckets_when_full() -> None:
    now = [0.0]
    store = InMemoryRateLimitStore(clock_s=lambda: now[0], max_keys=2)
    await store.take("a", rate_per_s=1.0, burst=1)
    await store.take("b", rate_per_s=1.0, burst=1)
    now[0] += 5.0
    await store.take("c", rate_per_s=1.0, burst=1)
    assert await store.take("c", rate_per_s=1.0, burst=1) > 0  # c's bucket exists and is empty
    assert len(store._buckets) <= 2


async def test_policy_rate_limit_sets_retry_after() -> None:
    policy = Policy(PolicyConfig(rate_per_s=0.25, burst=1), PEERS)
    (await policy.admit("rich-validator")).release()
    with pytest.raises(GatewayError) as caught:
        await policy.admit("rich-validator")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "4"


async def test_concurrency_leases_are_counted_and_released_once() -> None:
    policy = Policy(PolicyConfig(max_concurrent_per_hotkey=2), PEERS)
    first, second = await policy.admit("rich-validator"), await policy.admit("rich-validator")
    with pytest.raises(GatewayError, match="too_many_concurrent"):
        await policy.admit("rich-validator")
    first.release()
    first.release()  # idempotent: must not free a second slot
    third = await policy.admit("rich-validator")
    with pytest.raises(GatewayError):
        await policy.admit("rich-validator")
    second.release()
    third.release()


async def test_nonce_store_rejects_a_pair_seen_before() -> None:
    store = InMemoryNonceStore(retention_s=60)
    assert await store.check_and_store("hk", 1) is True
    assert await store.check_and_store("hk", 1) is False
    assert await store.check_and_store("hk", 2) is True
    assert await store.check_and_store("other", 1) is True


def test_gateway_all_is_pinned() -> None:
    assert set(gateway.__all__) == {
        "AuthScheme", "Authenticator", "BadRequest", "BtAuthScheme", "Caller", "GatewayConfig", "GatewayMetrics",
        "GatewayServer", "GatewayStartError", "InMemoryNonceStore", "InMemoryRateLimitStore", "InferenceService",
        "Lease", "MetagraphView", "NonceStore", "Overloaded", "PeerInfo", "Policy", "PolicyConfig",
        "RateLimitStore", "ServiceError", "StaticMetagraphView", "Unavailable", "create_app",
        "AdmissionQueue", "EpistulaScheme", "GatewayStores", "build_stores",
    }  # fmt: skip
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None


def test_config_rejects_unknown_and_out_of_range_settings() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_body_byte"):
        gateway.GatewayConfig(max_body_byte=10)
    with pytest.raises(ValidationError, match="rate_per_s"):
        PolicyConfig(rate_per_s=0)
    assert gateway.GatewayConfig().host == "127.0.0.1"


async def test_short_nonce_retention_is_a_startup_error() -> None:
    with pytest.raises(ValueError, match="freshness window"):
        gateway.BtAuthScheme("hk", InMemoryNonceStore(retention_s=5), max_age_s=10, allowed_skew_s=2)
