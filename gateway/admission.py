"""Admission under load: a process-wide in-flight cap with a bounded waiting room ordered by stake.

When every slot is busy, a request waits (at most ``max_wait_s``) in a priority queue keyed by
its caller's stake, highest first and first-come within equal stake, so the validators that weigh
most on a miner's score are served first when the engine is saturated. Memory stays bounded:
at most ``max_waiting`` requests wait; when the room is full a newcomer with more stake than the
lowest waiter takes its place (that waiter gets the 503), otherwise the newcomer gets it. Every
refusal is 503 ``overloaded`` with ``Retry-After``.

Slots are handed directly from a finishing request to the next waiter, so a burst of new
arrivals cannot overtake the queue. A waiter that disconnects leaves the queue; one that is
cancelled just as it was granted a slot passes the slot on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway._errors import GatewayError

__all__ = ["AdmissionQueue"]


@dataclass(order=True, slots=True)
class _Waiter:
    rank: tuple[float, int]
    """``(-stake, arrival)``: the heap's order, highest stake then earliest first."""
    future: asyncio.Future[None] = field(compare=False)
    live: bool = field(default=True, compare=False)


class AdmissionQueue:
    """Cap requests in flight at ``max_in_flight``; queue up to ``max_waiting`` more by ``priority``.

    ``priority(hotkey)`` is the caller's stake (higher is served first); it must be a cheap
    in-memory read. :attr:`in_flight` and :attr:`waiting` are the current counts (export them
    with a gauge's ``set_function``).
    """

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_waiting: int,
        max_wait_s: float,
        retry_after_s: int,
        priority: Callable[[str], float],
    ) -> None:
        if max_in_flight < 1 or max_waiting < 0 or max_wait_s <= 0:
            raise ValueError("need max_in_flight >= 1, max_waiting >= 0 and max_wait_s > 0")
        self._max_in_flight = max_in_flight
        self._max_waiting = max_waiting
        self._max_wait_s = max_wait_s
        self._retry_after = str(retry_after_s)
        self._priority = priority
        self._heap: list[_Waiter] = []
        self._arrivals = itertools.count()
        self.in_flight = 0
        self.waiting = 0

    async def acquire(self, hotkey_ss58: str) -> Callable[[], None]:
        """Take a slot, waiting in stake order if all are busy; returns the idempotent ``release``.

        Raises 503 ``GatewayError`` when the waiting room is full, when a higher-stake caller
        displaces this one, or after ``max_wait_s``.
        """
        if self.in_flight < self._max_in_flight:
            return self._grant()
        stake = self._priority(hotkey_ss58)
        if self.waiting >= self._max_waiting:
            lowest = max((w for w in self._heap if w.live), default=None)
            if lowest is None or -lowest.rank[0] >= stake:
                raise self._overloaded(f"{self._max_in_flight} requests in flight and {self.waiting} waiting")
            self._drop(lowest)
            lowest.future.set_exception(self._overloaded("displaced from the queue by a caller with more stake"))
        waiter = _Waiter((-stake, next(self._arrivals)), asyncio.get_running_loop().create_future())
        heapq.heappush(self._heap, waiter)
        self.waiting += 1
        try:
            async with asyncio.timeout(self._max_wait_s):
                await waiter.future
        except TimeoutError:
            if _granted(waiter.future):  # the slot arrived as the wait ran out: use it
                return self._release_once()
            self._drop(waiter)
            raise self._overloaded(f"no slot freed within {self._max_wait_s:g}s") from None
        except asyncio.CancelledError:
            if _granted(waiter.future):
                self._release()
            else:
                self._drop(waiter)
            raise
        return self._release_once()

    def _grant(self) -> Callable[[], None]:
        self.in_flight += 1
        return self._release_once()

    def _release_once(self) -> Callable[[], None]:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release()

        return release

    def _release(self) -> None:
        """Hand the slot to the best live waiter, or free it."""
        while self._heap:
            waiter = heapq.heappop(self._heap)
            if waiter.live and not waiter.future.done():
                waiter.live = False
                self.waiting -= 1
                waiter.future.set_result(None)
                return  # the slot changes hands: in_flight is unchanged
        self.in_flight -= 1

    def _drop(self, waiter: _Waiter) -> None:
        if waiter.live:
            waiter.live = False
            self.waiting -= 1
        if len(self._heap) > 2 * self._max_waiting + 16:  # compact dead entries so memory stays bounded
            self._heap = [w for w in self._heap if w.live]
            heapq.heapify(self._heap)

    def _overloaded(self, detail: str) -> GatewayError:
        return GatewayError(503, "overloaded", detail, headers={"Retry-After": self._retry_after})


def _granted(future: asyncio.Future[None]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
