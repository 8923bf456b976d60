"""Run a coroutine up to its first suspension, so guards that only matter while waiting cost nothing.

A deadline (``asyncio.timeout``) or a cancellation shield only acts while a coroutine is
suspended: code that runs straight through cannot time out or be cancelled. On the hot path the
body is usually buffered already, and an instant service yields without waiting, so
:func:`step` runs the coroutine synchronously first and the caller sets up the guard only when
it actually suspends, then finishes it with :func:`resume` inside the guard. The outcome is the
same as awaiting the coroutine inside the guard from the start.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume", "step"]


def step(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` until it suspends or ends, in the current task.

    Returns ``(True, result)`` when it ended, ``(False, yielded)`` when it suspended: then pass
    ``yielded`` to :func:`resume` (exactly once). Exceptions from ``coro`` propagate.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, yielded


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Await the rest of a coroutine :func:`step` left suspended (``yield from`` semantics)."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and timeouts reach the coroutine as they would
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value
