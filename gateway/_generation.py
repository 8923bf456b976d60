"""One request's pass through the service: pull chunks under a deadline, time them, always close."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Final

import anyio

from gateway._eager import resume, step
from protocol.synapses import InferenceChunk

__all__ = ["END", "KEEPALIVE", "Generation"]

END: Final = object()
"""Returned by :meth:`Generation.next` when the service's iterator is exhausted."""
KEEPALIVE: Final = object()
"""Returned by :meth:`Generation.next` when ``keepalive_s`` passed without a chunk."""

_CLOSE_GRACE_S = 5.0


_loops: dict[int, asyncio.AbstractEventLoop] = {}


def _running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()`` without its ``getpid()`` syscall on every call (Python 3.11).

    A thread runs at most one loop at a time, so a loop cached for this thread that is still
    running is the running loop; anything else falls back to the real lookup.
    """
    thread = threading.get_ident()
    loop = _loops.get(thread)
    if loop is None or not loop.is_running():
        loop = _loops[thread] = asyncio.get_running_loop()
    return loop


async def _pull(chunks: AsyncIterator[InferenceChunk]) -> object:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return END


class Generation:
    """Drive a service's chunk iterator with a deadline on the event loop's clock.

    A ``next`` that may stop for a keepalive waits in a task, so stopping does not disturb the
    service's iterator; one without a keepalive (unary, NDJSON) pulls inline under the deadline,
    saving a task per chunk. ``aclose`` cancels a pending pull and closes the iterator (shielded,
    so it still runs when the request itself is being cancelled), freeing the engine slot. Pulls
    and closes that finish without suspending skip the deadline and the shield (``gateway._eager``).
    """

    def __init__(
        self, chunks: AsyncIterator[InferenceChunk], *, deadline_s: float | None = None, timeout_s: float | None = None
    ) -> None:
        """Pass either ``deadline_s`` (on the loop's clock) or ``timeout_s`` (from now)."""
        if (deadline_s is None) == (timeout_s is None):
            raise ValueError("pass exactly one of deadline_s and timeout_s")
        self._chunks = chunks
        self._loop = _running_loop()
        self.started_s = self._loop.time()
        self.deadline_s: float = self.started_s + timeout_s if timeout_s is not None else deadline_s  # type: ignore[assignment]
        self.ttft_s: float | None = None
        self.completion_tokens = 0
        self._pending: asyncio.Task[object] | None = None

    async def next(self, *, keepalive_s: float | None = None) -> object:
        """The next :class:`InferenceChunk`, ``END`` or ``KEEPALIVE``.

        Raises ``TimeoutError`` at the deadline; the service's own exceptions propagate.
        """
        if self._pending is None:
            if keepalive_s is None:
                item = await self._pull_inline()
                self._count(item)
                return item
            self._pending = asyncio.ensure_future(_pull(self._chunks))
        remaining_s = self.deadline_s - self._loop.time()
        wait_s = remaining_s if keepalive_s is None else min(keepalive_s, remaining_s)
        done, _ = await asyncio.wait((self._pending,), timeout=max(0.0, wait_s))
        if not done:
            if self._loop.time() >= self.deadline_s:
                raise TimeoutError
            return KEEPALIVE
        task, self._pending = self._pending, None
        item = task.result()
        self._count(item)
        return item

    async def _pull_inline(self) -> object:
        """Pull in this task when no keepalive can interrupt the wait (unary, NDJSON): no extra task.

        At the deadline the pull is cancelled inside the service's iterator, as ``aclose`` would.
        A pull that completes without suspending needs no deadline (it cannot be interrupted).
        """
        pull = _pull(self._chunks)
        done, value = step(pull)
        if done:
            return value
        async with asyncio.timeout_at(self.deadline_s):
            return await resume(pull, value)

    def _count(self, item: object) -> None:
        if isinstance(item, InferenceChunk) and item.token_ids:
            if self.ttft_s is None:
                self.ttft_s = self._loop.time() - self.started_s
            self.completion_tokens += len(item.token_ids)

    def elapsed_s(self) -> float:
        return self._loop.time() - self.started_s

    async def aclose(self) -> None:
        if self._pending is None:  # usual case: closing the iterator runs straight through, no shield needed
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is None:
                return
            closing = aclose()
            if not isinstance(closing, Coroutine):  # an arbitrary awaitable: await it under the shield
                with anyio.move_on_after(_CLOSE_GRACE_S, shield=True):
                    await closing
                return
            done, value = step(closing)
            if done:
                return
            with anyio.move_on_after(_CLOSE_GRACE_S, shield=True):
                await resume(closing, value)
            return
        with anyio.move_on_after(_CLOSE_GRACE_S, shield=True):
            if self._pending is not None:
                self._pending.cancel()
                with contextlib.suppress(BaseException):
                    await self._pending
                self._pending = None
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
