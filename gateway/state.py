"""Build the gateway's state stores from its config: in-memory per process, or Redis shared by all.

:func:`build_stores` is the one place that decides: ``GatewayConfig.redis_url`` unset gives
per-process stores (one worker); set, every replay cache and the rate limiter live in that Redis,
so any number of workers or hosts behind one address reject a request replayed to a sibling.
The caller owns the result: pass its stores to ``create_app`` and ``Policy`` and ``aclose()`` it
at shutdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config import GatewayConfig
from gateway.epistula import InMemoryUuidStore, UuidStore
from gateway.redis_stores import (
    RedisMonotonicNonceStore,
    RedisNonceStore,
    RedisRateLimitStore,
    RedisUuidStore,
    connect_redis,
    key_namespace,
)
from gateway.stores import InMemoryNonceStore, InMemoryRateLimitStore, NonceStore, RateLimitStore
from protocol.auth.legacy import InMemoryMonotonicNonceStore, MonotonicNonceStore

__all__ = ["GatewayStores", "build_stores", "replay_retention_s"]


def replay_retention_s(config: GatewayConfig) -> float:
    """How long replay caches keep an entry: twice the freshness window, at least 60 s."""
    return max(60.0, 2 * (config.auth_max_age_s + config.auth_allowed_skew_s))


@dataclass(frozen=True)
class GatewayStores:
    """Every piece of state the gateway keeps about callers, and how to release it."""

    nonce_store: NonceStore
    """btauth/1 ``(hotkey, nonce)`` replay cache (``create_app(nonce_store=...)``)."""
    epistula_store: UuidStore
    """Epistula ``(hotkey, uuid)`` replay cache (``create_app(epistula_store=...)``)."""
    legacy_nonce_store: MonotonicNonceStore
    """Legacy axon highest nonce per ``hotkey:uuid`` (``create_app(legacy_nonce_store=...)``)."""
    rate_store: RateLimitStore
    """Per-hotkey token buckets (``Policy(..., rate_store=...)``)."""
    redis: Any = None
    """The shared ``redis.asyncio`` client, or None for in-memory stores."""

    @property
    def shared(self) -> bool:
        """True when the state is in Redis (shared by every worker that uses the same URL)."""
        return self.redis is not None

    async def aclose(self) -> None:
        """Close the Redis connection pool, if any (idempotent)."""
        if self.redis is not None:
            await self.redis.aclose()


def build_stores(config: GatewayConfig, *, hotkey_ss58: str) -> GatewayStores:
    """Stores for the miner ``hotkey_ss58``: Redis at ``config.redis_url`` when set, else in-memory.

    Connecting is lazy (the first request opens the connection), so this never blocks; an
    unreachable Redis shows up as 503 ``state_store_unavailable`` answers, never as admitted requests.
    """
    retention_s = replay_retention_s(config)
    url = config.redis_url
    if url is None:
        return GatewayStores(
            nonce_store=InMemoryNonceStore(retention_s=retention_s),
            epistula_store=InMemoryUuidStore(retention_s=retention_s),
            legacy_nonce_store=InMemoryMonotonicNonceStore(),
            rate_store=InMemoryRateLimitStore(),
        )
    client = connect_redis(url)
    namespace = key_namespace(hotkey_ss58)
    return GatewayStores(
        nonce_store=RedisNonceStore(client, namespace=namespace, retention_s=retention_s),
        epistula_store=RedisUuidStore(client, namespace=namespace, retention_s=retention_s),
        legacy_nonce_store=RedisMonotonicNonceStore(client, namespace=namespace),
        rate_store=RedisRateLimitStore(client, namespace=namespace),
        redis=client,
    )
