"""The Redis stores against a real redis-server: atomic first sightings, monotonic nonces, buckets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.redis_stores import (
    RedisMonotonicNonceStore,
    RedisNonceStore,
    RedisRateLimitStore,
    RedisUuidStore,
    StateStoreUnavailable,
    connect_redis,
)

pytestmark = pytest.mark.redis

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
NONCE_NS = 1_796_311_141_410_563_224


async def test_btauth_nonce_is_accepted_once_per_hotkey(redis_client: Any, namespace: str) -> None:
    store = RedisNonceStore(redis_client, namespace=namespace, retention_s=60)
    assert await store.check_and_store(ALICE, NONCE_NS)
    assert not await store.check_and_store(ALICE, NONCE_NS)
    assert await store.check_and_store(BOB, NONCE_NS)
    assert await store.check_and_store(ALICE, NONCE_NS + 1)


async def test_concurrent_first_sightings_from_two_clients_admit_exactly_one(redis_server: Any, namespace: str) -> None:
    """Two clients stand for two worker processes racing on one replayed nonce and uuid."""
    first, second = connect_redis(redis_server.url), connect_redis(redis_server.url)
    try:
        stores = [RedisNonceStore(c, namespace=namespace) for c in (first, second)]
        uuids = [RedisUuidStore(c, namespace=namespace) for c in (first, second)]
        nonce_results = await asyncio.gather(*(stores[i % 2].check_and_store(ALICE, NONCE_NS) for i in range(40)))
        uuid_results = await asyncio.gather(*(uuids[i % 2].check_and_store(ALICE, "u-1") for i in range(40)))
    finally:
        await first.aclose()
        await second.aclose()
    assert nonce_results.count(True) == 1
    assert uuid_results.count(True) == 1


async def test_entries_expire_after_retention(redis_client: Any, namespace: str) -> None:
    store = RedisUuidStore(redis_client, namespace=namespace, retention_s=0.05)
    assert await store.check_and_store(ALICE, "u-2")
    assert not await store.check_and_store(ALICE, "u-2")
    await asyncio.sleep(0.3)
    assert await store.check_and_store(ALICE, "u-2")
    ttl_ms = await redis_client.pttl(f"{namespace}epistula:{ALICE}:u-2")
    assert 0 < ttl_ms <= 50


async def test_btauth_and_epistula_keys_do_not_collide(redis_client: Any, namespace: str) -> None:
    assert await RedisNonceStore(redis_client, namespace=namespace).check_and_store(ALICE, 7)
    assert await RedisUuidStore(redis_client, namespace=namespace).check_and_store(ALICE, "7")


async def test_legacy_nonce_must_strictly_increase_at_full_nanosecond_precision(
    redis_client: Any, namespace: str
) -> None:
    """19-digit nonces one apart differ below a double's precision: compared as padded strings."""
    store = RedisMonotonicNonceStore(redis_client, namespace=namespace)
    key = f"{ALICE}:uuid-a"
    assert await store.advance(key, NONCE_NS, 30.0)
    assert not await store.advance(key, NONCE_NS, 30.0)
    assert not await store.advance(key, NONCE_NS - 1, 30.0)
    assert await store.advance(key, NONCE_NS + 1, 30.0)
    assert not await store.advance(key, NONCE_NS, 30.0)
    assert await store.advance(f"{ALICE}:uuid-b", NONCE_NS - 5, 30.0)


async def test_legacy_nonce_compares_numbers_not_text(redis_client: Any, namespace: str) -> None:
    store = RedisMonotonicNonceStore(redis_client, namespace=namespace)
    assert await store.advance("k", 1000, 30.0)
    assert not await store.advance("k", 999, 30.0)
    assert await store.advance("k", 10_000, 30.0)


async def test_legacy_entry_expires_after_ttl(redis_client: Any, namespace: str) -> None:
    store = RedisMonotonicNonceStore(redis_client, namespace=namespace)
    assert await store.advance("k", NONCE_NS, 0.05)
    await asyncio.sleep(0.3)
    assert await store.advance("k", NONCE_NS - 10, 30.0)


async def test_legacy_concurrent_advances_admit_one(redis_server: Any, namespace: str) -> None:
    first, second = connect_redis(redis_server.url), connect_redis(redis_server.url)
    try:
        stores = [RedisMonotonicNonceStore(c, namespace=namespace) for c in (first, second)]
        results = await asyncio.gather(*(stores[i % 2].advance("k", NONCE_NS, 30.0) for i in range(40)))
    finally:
        await first.aclose()
        await second.aclose()
    assert results.count(True) == 1


async def test_token_bucket_is_shared_and_refills(redis_server: Any, namespace: str) -> None:
    now = [1000.0]
    first, second = connect_redis(redis_server.url), connect_redis(redis_server.url)
    try:
        a = RedisRateLimitStore(first, namespace=namespace, clock_s=lambda: now[0])
        b = RedisRateLimitStore(second, namespace=namespace, clock_s=lambda: now[0])
        waits = [await (a if i % 2 else b).take(ALICE, rate_per_s=2.0, burst=3) for i in range(3)]
        assert waits == [0.0, 0.0, 0.0]
        assert await a.take(ALICE, rate_per_s=2.0, burst=3) == pytest.approx(0.5)
        assert await b.take(BOB, rate_per_s=2.0, burst=3) == 0.0
        now[0] += 0.5
        assert await b.take(ALICE, rate_per_s=2.0, burst=3) == 0.0
        assert await a.take(ALICE, rate_per_s=2.0, burst=3) == pytest.approx(0.5)
    finally:
        await first.aclose()
        await second.aclose()


async def test_token_bucket_on_redis_clock_limits_and_expires(redis_client: Any, namespace: str) -> None:
    store = RedisRateLimitStore(redis_client, namespace=namespace)
    assert await store.take(ALICE, rate_per_s=0.01, burst=2) == 0.0
    assert await store.take(ALICE, rate_per_s=0.01, burst=2) == 0.0
    wait_s = await store.take(ALICE, rate_per_s=0.01, burst=2)
    assert 90.0 < wait_s <= 100.0
    ttl_ms = await redis_client.pttl(f"{namespace}rate:{ALICE}")
    assert 0 < ttl_ms <= 201_000


async def test_every_store_fails_closed_when_redis_is_unreachable(namespace: str, dead_redis_url: str) -> None:
    client = connect_redis(dead_redis_url)
    try:
        calls = [
            RedisNonceStore(client, namespace=namespace).check_and_store(ALICE, NONCE_NS),
            RedisUuidStore(client, namespace=namespace).check_and_store(ALICE, "u"),
            RedisMonotonicNonceStore(client, namespace=namespace).advance("k", NONCE_NS, 30.0),
            RedisRateLimitStore(client, namespace=namespace).take(ALICE, rate_per_s=1.0, burst=1),
        ]
        for call in calls:
            with pytest.raises(StateStoreUnavailable) as caught:
                await call
            assert caught.value.status == 503
            assert caught.value.code == "state_store_unavailable"
            assert "Redis" in caught.value.detail
    finally:
        await client.aclose()
