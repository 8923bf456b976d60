"""Redis-backed gateway state, shared by every worker process and host that points at one Redis.

Implements the gateway's state seams over one ``redis.asyncio`` client (never blocking the loop):

- :class:`RedisNonceStore` (btauth/1 ``(hotkey, nonce)``) and :class:`RedisUuidStore` (Epistula
  ``(hotkey, uuid)``): one ``SET key 1 NX PX retention`` each, atomic in Redis;
- :class:`RedisMonotonicNonceStore` (legacy axon, highest nonce per ``hotkey:uuid``): a Lua
  compare-and-set-if-greater with a TTL;
- :class:`RedisRateLimitStore` (per-hotkey token bucket): a Lua script on Redis's own clock, so
  hosts with skewed clocks share one bucket.

Failure is closed: when Redis cannot be reached or answers with an error, every call raises
:class:`StateStoreUnavailable`, a 503 JSON answer naming the problem, so a request whose nonce
could not be recorded is never admitted. The client reconnects on its own; the next request after
Redis is back is served. Keys are namespaced per miner hotkey, so several miners may share a Redis.

A Redis that restarts without persistence forgets the nonces it accepted in the last freshness
window (about 12 s), so a request captured then could be served once more after the restart;
run Redis with ``appendonly yes`` (or a replica) where that matters.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway._errors import GatewayError

__all__ = [
    "RedisMonotonicNonceStore",
    "RedisNonceStore",
    "RedisRateLimitStore",
    "RedisUuidStore",
    "StateStoreUnavailable",
    "connect_redis",
    "key_namespace",
]

_NONCE_DIGITS = 20
"""Legacy nonces are compared as zero-padded decimal strings: Lua numbers are doubles (53 bits)."""

_ADVANCE_LUA = """
local current = redis.call('GET', KEYS[1])
if current and current >= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_TAKE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = burst
  updated = now
end
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class StateStoreUnavailable(GatewayError):
    """Shared state (Redis) is unreachable or failing: 503 ``state_store_unavailable``, fail closed."""

    def __init__(self, action: str, exc: BaseException) -> None:
        super().__init__(
            503,
            "state_store_unavailable",
            f"cannot {action}: the shared state store (Redis) is unavailable ({type(exc).__name__}); retry shortly",
            headers={"Retry-After": "1"},
        )


def connect_redis(url: str, *, timeout_s: float = 1.0, connect_timeout_s: float = 0.5) -> redis.Redis:
    """A ``redis.asyncio`` client for ``url`` that fails fast (one retry, no backoff).

    Connections are opened lazily on first use (inside the serving event loop); query options in
    ``url`` (``?socket_timeout=...``) override the timeouts given here. Close it with ``aclose()``.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=connect_timeout_s,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


def key_namespace(hotkey_ss58: str) -> str:
    """Key prefix for one miner's state, so several miners can share a Redis database."""
    return f"axongate:{hotkey_ss58}:"


async def _first_sighting(client: redis.Redis, key: str, retention_s: float, action: str) -> bool:
    try:
        created = await client.set(key, b"1", nx=True, px=max(1, round(retention_s * 1000)))
    except (RedisError, OSError) as exc:
        raise StateStoreUnavailable(action, exc) from None
    return bool(created)


class RedisNonceStore:
    """:class:`gateway.stores.NonceStore` for btauth/1: ``SET NX PX`` per ``(hotkey, nonce)``."""

    def __init__(self, client: redis.Redis, *, namespace: str, retention_s: float = 60.0) -> None:
        self.retention_s = retention_s
        self._client = client
        self._prefix = f"{namespace}btauth:"

    async def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        key = f"{self._prefix}{hotkey_ss58}:{nonce_ns}"
        return await _first_sighting(self._client, key, self.retention_s, "record the btauth nonce")


class RedisUuidStore:
    """:class:`gateway.epistula.UuidStore` for Epistula: ``SET NX PX`` per ``(hotkey, uuid)``."""

    def __init__(self, client: redis.Redis, *, namespace: str, retention_s: float = 60.0) -> None:
        self.retention_s = retention_s
        self._client = client
        self._prefix = f"{namespace}epistula:"

    async def check_and_store(self, hotkey_ss58: str, uuid: str) -> bool:
        key = f"{self._prefix}{hotkey_ss58}:{uuid}"
        return await _first_sighting(self._client, key, self.retention_s, "record the Epistula uuid")


class RedisMonotonicNonceStore:
    """:class:`protocol.auth.legacy.MonotonicNonceStore`: Lua compare-and-set-if-greater with ``PX``."""

    def __init__(self, client: redis.Redis, *, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}legacy:"
        self._advance: Any = client.register_script(_ADVANCE_LUA)

    async def advance(self, key: str, nonce_ns: int, ttl_s: float) -> bool:
        if nonce_ns < 0 or len(str(nonce_ns)) > _NONCE_DIGITS:
            raise ValueError(f"legacy nonce out of range: {nonce_ns}")
        padded = str(nonce_ns).zfill(_NONCE_DIGITS)
        try:
            advanced = await self._advance(keys=[self._prefix + key], args=[padded, max(1, round(ttl_s * 1000))])
        except (RedisError, OSError) as exc:
            raise StateStoreUnavailable("record the legacy nonce", exc) from None
        return int(advanced) == 1


class RedisRateLimitStore:
    """:class:`gateway.stores.RateLimitStore`: one token bucket per key, updated by a Lua script.

    The bucket refills on Redis's clock (``TIME``) unless ``clock_s`` is given (tests); its key
    expires once it would be full again, so idle callers cost no memory.
    """

    def __init__(self, client: redis.Redis, *, namespace: str, clock_s: Any = None) -> None:
        self._client = client
        self._prefix = f"{namespace}rate:"
        self._clock_s = clock_s
        self._take: Any = client.register_script(_TAKE_LUA)

    async def take(self, key: str, *, rate_per_s: float, burst: int) -> float:
        now = -1.0 if self._clock_s is None else float(self._clock_s())
        try:
            wait = await self._take(keys=[self._prefix + key], args=[repr(rate_per_s), burst, repr(now)])
        except (RedisError, OSError) as exc:
            raise StateStoreUnavailable("check the rate limit", exc) from None
        return float(wait)
