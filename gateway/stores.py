"""Gateway state seams: replay-protection nonces and per-hotkey rate buckets.

Both are async ``Protocol`` s so a shared backend (Redis, for several workers or hosts) can replace
the in-memory defaults without blocking the event loop. The in-memory stores are per process:
behind several workers, replay protection and rate limits need a shared store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bittensor import http_auth

__all__ = ["InMemoryNonceStore", "InMemoryRateLimitStore", "NonceStore", "RateLimitStore"]


class NonceStore(Protocol):
    """Remembers accepted (hotkey, nonce) pairs; the async form of ``bittensor.http_auth.NonceStore``.

    ``check_and_store`` records the pair and returns True if it was never seen, False if it was;
    the check and the write are one atomic step. Entries must live at least ``retention_s``
    seconds, which the gateway checks covers its freshness window at startup.
    """

    retention_s: float

    async def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool: ...


class InMemoryNonceStore:
    """Per-process :class:`NonceStore` backed by the SDK's ``http_auth.InMemoryNonceStore``."""

    def __init__(self, retention_s: float = 60.0) -> None:
        self.retention_s = retention_s
        self._store = http_auth.InMemoryNonceStore(retention=retention_s)

    async def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        # A set lookup under an uncontended lock: microseconds, fine on the event loop.
        return self._store.check_and_store(hotkey_ss58, nonce_ns)


class RateLimitStore(Protocol):
    """Token buckets keyed by caller.

    ``take`` removes one token from ``key`` 's bucket (capacity ``burst``, refilled at
    ``rate_per_s``) and returns 0.0, or, when the bucket is empty, takes nothing and returns
    the seconds until a token is available.
    """

    async def take(self, key: str, *, rate_per_s: float, burst: int) -> float: ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class InMemoryRateLimitStore:
    """Per-process :class:`RateLimitStore`. ``clock_s`` is injectable for tests.

    Memory stays bounded: when more than ``max_keys`` buckets exist, buckets that have refilled
    completely (indistinguishable from new ones) are dropped.
    """

    def __init__(self, *, clock_s: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self._clock_s = clock_s
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    async def take(self, key: str, *, rate_per_s: float, burst: int) -> float:
        now = self._clock_s()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._drop_full(now, rate_per_s, burst)
            bucket = self._buckets[key] = _Bucket(tokens=float(burst), updated_s=now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated_s) * rate_per_s)
        bucket.updated_s = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate_per_s

    def _drop_full(self, now: float, rate_per_s: float, burst: int) -> None:
        full_after_s = burst / rate_per_s
        for key in [k for k, b in self._buckets.items() if now - b.updated_s >= full_after_s]:
            del self._buckets[key]
