"""``gateway._eager``: stepping a coroutine first gives the same outcome as awaiting it in its guard."""

from __future__ import annotations

import asyncio

import pytest

from gateway._eager import resume, step


async def _instant(value: int) -> int:
    return value * 2


async def _slow(value: int, delay_s: float) -> int:
    await asyncio.sleep(delay_s)
    return value + 1


async def _fails() -> None:
    raise ValueError("boom")


async def test_a_coroutine_that_never_suspends_finishes_in_the_step() -> None:
    assert step(_instant(21)) == (True, 42)


async def test_a_suspended_coroutine_finishes_through_resume() -> None:
    coro = _slow(1, 0.01)
    done, yielded = step(coro)
    assert not done
    assert await resume(coro, yielded) == 2


async def test_errors_raised_before_any_suspension_propagate_from_the_step() -> None:
    with pytest.raises(ValueError, match="boom"):
        step(_fails())


async def test_a_deadline_around_resume_still_interrupts_the_coroutine() -> None:
    cleaned_up = []

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned_up.append(True)

    coro = waits()
    done, yielded = step(coro)
    assert not done
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await resume(coro, yielded)
    assert cleaned_up == [True]


async def test_cancelling_the_task_reaches_the_resumed_coroutine() -> None:
    seen = []

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def runner() -> None:
        coro = waits()
        done, yielded = step(coro)
        assert not done
        await resume(coro, yielded)

    task = asyncio.create_task(runner())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
