"""``Generation`` finds the running loop through a per-thread cache; it must never hand out a stale one."""

from __future__ import annotations

import asyncio
import threading

from gateway._generation import _running_loop


def test_each_new_loop_is_found_not_the_cached_one() -> None:
    async def which() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        return _running_loop(), asyncio.get_running_loop()

    for _ in range(3):
        cached, real = asyncio.run(which())
        assert cached is real


def test_loops_in_other_threads_are_kept_apart() -> None:
    found: list[bool] = []

    def in_thread() -> None:
        async def check() -> None:
            found.append(_running_loop() is asyncio.get_running_loop())

        asyncio.run(check())

    threads = [threading.Thread(target=in_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [True, True, True]
