"""Who may call, how often, and how many at once: checked after authentication, before any work.

Owns the :class:`MetagraphView` seam (what the gateway knows about a hotkey). The static view
serves until the chain is wired; the miner feeds a chain-backed view refreshed in the background,
so ``lookup`` stays a synchronous in-memory read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway._errors import GatewayError
from gateway.config import PolicyConfig
from gateway.stores import InMemoryRateLimitStore, RateLimitStore

__all__ = ["Lease", "MetagraphView", "PeerInfo", "Policy", "StaticMetagraphView"]


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the metagraph says about one hotkey."""

    uid: int
    stake: float
    validator_permit: bool


class MetagraphView(Protocol):
    """Read-only view of the subnet's registered hotkeys; ``lookup`` is an in-memory read."""

    def lookup(self, hotkey_ss58: str) -> PeerInfo | None: ...


class StaticMetagraphView:
    """A fixed :class:`MetagraphView`: an allow-list with stakes, for tests and local runs."""

    def __init__(self, peers: Mapping[str, PeerInfo]) -> None:
        self._peers = dict(peers)

    @classmethod
    def of_validators(cls, hotkeys: Iterable[str], *, stake: float = 0.0) -> StaticMetagraphView:
        """Every hotkey registered with a validator permit and ``stake``, uids in order."""
        return cls({hk: PeerInfo(uid=uid, stake=stake, validator_permit=True) for uid, hk in enumerate(hotkeys)})

    def lookup(self, hotkey_ss58: str) -> PeerInfo | None:
        return self._peers.get(hotkey_ss58)


class Lease:
    """One admitted request's concurrency slot; ``release`` (idempotent) when the response ends."""

    __slots__ = ("_counts", "_hotkey", "_released")

    def __init__(self, counts: dict[str, int], hotkey_ss58: str) -> None:
        self._counts = counts
        self._hotkey = hotkey_ss58
        self._released = False
        counts[hotkey_ss58] = counts.get(hotkey_ss58, 0) + 1

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        left = self._counts[self._hotkey] - 1
        if left:
            self._counts[self._hotkey] = left
        else:
            del self._counts[self._hotkey]


class Policy:
    """Admit or reject an authenticated caller.

    Order (cheapest first, never touching the model): deny list, allow list, metagraph
    registration, stake, validator permit -> 403; rate (token bucket) and concurrency -> 429
    with ``Retry-After``. Concurrency is counted per process.
    """

    def __init__(
        self, config: PolicyConfig, metagraph: MetagraphView, *, rate_store: RateLimitStore | None = None
    ) -> None:
        self.config = config
        self._metagraph = metagraph
        self._rate_store = rate_store if rate_store is not None else InMemoryRateLimitStore()
        self._in_flight: dict[str, int] = {}

    def stake_of(self, hotkey_ss58: str) -> float:
        """The caller's stake in the metagraph view (0 when unknown): its admission priority under load."""
        peer = self._metagraph.lookup(hotkey_ss58)
        return peer.stake if peer is not None else 0.0

    async def admit(self, hotkey_ss58: str) -> Lease:
        """Return a :class:`Lease` for the caller, or raise ``GatewayError`` (403/429)."""
        self.check_identity(hotkey_ss58)
        return await self.acquire(hotkey_ss58)

    async def acquire(self, hotkey_ss58: str) -> Lease:
        """Take a rate token and a concurrency slot for an identity-checked caller, or raise 429."""
        cfg = self.config
        wait_s = await self._rate_store.take(hotkey_ss58, rate_per_s=cfg.rate_per_s, burst=cfg.burst)
        if wait_s > 0:
            raise GatewayError(
                429,
                "rate_limited",
                f"hotkey exceeds {cfg.rate_per_s:g} requests/s (burst {cfg.burst}); retry in {wait_s:.2f}s",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
        if self._in_flight.get(hotkey_ss58, 0) >= cfg.max_concurrent_per_hotkey:
            raise GatewayError(
                429,
                "too_many_concurrent",
                f"hotkey already has {cfg.max_concurrent_per_hotkey} requests in flight",
                headers={"Retry-After": "1"},
            )
        return Lease(self._in_flight, hotkey_ss58)

    def check_identity(self, hotkey_ss58: str) -> None:
        """Raise a 403 ``GatewayError`` if lists or the metagraph reject the hotkey."""
        cfg = self.config
        if hotkey_ss58 in cfg.deny_hotkeys:
            raise GatewayError(403, "hotkey_denied", "hotkey is on this miner's deny list")
        if cfg.allow_hotkeys and hotkey_ss58 not in cfg.allow_hotkeys:
            raise GatewayError(403, "hotkey_not_allowed", "hotkey is not on this miner's allow list")
        peer = self._metagraph.lookup(hotkey_ss58)
        if peer is None:
            if cfg.require_registered:
                raise GatewayError(403, "hotkey_not_registered", "hotkey is not registered on this subnet")
            if cfg.min_stake > 0 or cfg.require_validator_permit:
                raise GatewayError(403, "hotkey_not_registered", "unregistered hotkeys have no stake or permit")
            return
        if peer.stake < cfg.min_stake:
            raise GatewayError(
                403, "insufficient_stake", f"hotkey stake {peer.stake:g} is below the minimum {cfg.min_stake:g}"
            )
        if cfg.require_validator_permit and not peer.validator_permit:
            raise GatewayError(403, "no_validator_permit", "hotkey has no validator permit")
