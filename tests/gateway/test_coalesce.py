"""CoalescingTransport: the writes of one loop step leave as one write, in order, and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.coalesce import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


async def _next_step() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_step_leave_as_one_write_and_later_ones_separately() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"ok")
    assert real.writes == [] and transport.get_write_buffer_size() == 40
    await _next_step()
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    transport.write(b"chunk 1")
    await _next_step()
    transport.write(b"chunk 2")
    await _next_step()
    assert real.writes[1:] == [b"chunk 1", b"chunk 2"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5)  # everything else passes through


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    closing, aborting = RecordingTransport(), RecordingTransport()
    for real in (closing, aborting):
        transport = CoalescingTransport(real, loop)  # type: ignore[arg-type]
        transport.write(b"last words")
        transport.close() if real is closing else transport.abort()
    await _next_step()  # the scheduled flush finds nothing left and writes nothing after close
    assert closing.writes == [b"last words"] and closing.closed
    assert aborting.writes == [] and aborting.aborted


async def test_a_flush_after_the_peer_went_away_writes_nothing() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"too late")
    real.aborted = True  # the connection was lost before the loop step ended
    await _next_step()
    assert real.writes == []
