"""Epistula v2 on the gateway: an :class:`~gateway.auth.AuthScheme` and its uuid replay cache.

Owns the :class:`UuidStore` seam (accepted ``(hotkey, uuid)`` pairs), with a per-process
in-memory implementation; the Redis one, shared by several workers or hosts, is in
:mod:`gateway.redis_stores`.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Protocol

from starlette.datastructures import Headers
from starlette.requests import Request

from gateway.auth import Caller
from protocol.auth import AuthErrorCode, AuthFailure
from protocol.auth.epistula import SCHEME, has_epistula_headers, verify_epistula_signature

__all__ = ["EpistulaScheme", "InMemoryUuidStore", "UuidStore"]


class UuidStore(Protocol):
    """Remembers accepted ``(hotkey, uuid)`` pairs for at least ``retention_s`` seconds.

    ``check_and_store`` records the pair and returns True if it was never seen, False if it was;
    the check and the write are one atomic step.
    """

    retention_s: float

    async def check_and_store(self, hotkey_ss58: str, uuid: str) -> bool: ...


class InMemoryUuidStore:
    """Per-process :class:`UuidStore`: a dict plus an expiry heap, pruned on every write."""

    def __init__(self, retention_s: float = 60.0, *, clock_s: Callable[[], float] = time.monotonic) -> None:
        self.retention_s = retention_s
        self._clock_s = clock_s
        self._expiry_by_key: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    async def check_and_store(self, hotkey_ss58: str, uuid: str) -> bool:
        # No await between the check and the write: atomic on the event loop.
        now = self._clock_s()
        while self._heap and self._heap[0][0] <= now:
            _, old = heapq.heappop(self._heap)
            if self._expiry_by_key.get(old, now + 1) <= now:
                del self._expiry_by_key[old]
        key = (hotkey_ss58, uuid)
        if key in self._expiry_by_key:
            return False
        expiry = now + self.retention_s
        self._expiry_by_key[key] = expiry
        heapq.heappush(self._heap, (expiry, key))
        return True

    def __len__(self) -> int:
        return len(self._expiry_by_key)


class EpistulaScheme:
    """Epistula v2, addressed to this miner's hotkey, replay-checked against ``uuid_store``.

    Claims every request carrying an ``Epistula-*`` header. Checks, in order: headers (400),
    signature (401), ``Epistula-Signed-For`` is this miner (403), two-sided freshness window
    (401), then the caller hook (the policy's identity check, 403), then the uuid (401
    ``auth_replayed``), recorded only after all else passed.
    """

    name = SCHEME

    def __init__(
        self,
        hotkey_ss58: str,
        uuid_store: UuidStore,
        *,
        max_age_s: float,
        allowed_skew_s: float,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        if uuid_store.retention_s < max_age_s + allowed_skew_s:
            raise ValueError(
                f"uuid store retains {uuid_store.retention_s:g}s but the freshness window is "
                f"{max_age_s + allowed_skew_s:g}s; replays inside the gap would pass"
            )
        self._hotkey_ss58 = hotkey_ss58
        self._uuid_store = uuid_store
        self._max_age_s = max_age_s
        self._allowed_skew_s = allowed_skew_s
        self._clock_ms = clock_ms

    def claims(self, headers: Headers) -> bool:
        return has_epistula_headers(headers)

    async def authenticate(
        self, request: Request, body: bytes, *, before_recording: Callable[[Caller], None] | None = None
    ) -> Caller:
        sender = verify_epistula_signature(
            request.headers,
            body,
            receiver_ss58=self._hotkey_ss58,
            max_age_s=self._max_age_s,
            allowed_skew_s=self._allowed_skew_s,
            now_ms=self._clock_ms() if self._clock_ms is not None else None,
        )
        caller = Caller(hotkey_ss58=sender.hotkey_ss58, scheme=self.name, nonce=sender.uuid)
        if before_recording is not None:
            before_recording(caller)
        if not await self._uuid_store.check_and_store(sender.hotkey_ss58, sender.uuid):
            raise AuthFailure(AuthErrorCode.REPLAYED, "this Epistula-Uuid was already accepted from this hotkey")
        return caller
