"""One socket write per response instead of one per ASGI message.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start`` and the body on each ``http.response.body``: a small unary answer costs
two ``send`` syscalls and often two TCP segments. :class:`CoalescingTransport` collects the writes
made during one event-loop step and hands them to the real transport as one write at the end of
that step, so a response the app sends without waiting in between leaves in a single write;
streamed chunks sent across steps still leave as they come, at most one loop step later.
:class:`HttpToolsProtocol` is uvicorn's httptools protocol on top of it (``GatewayServer`` uses it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpTools

__all__ = ["CoalescingTransport", "HttpToolsProtocol"]


class CoalescingTransport:
    """Wrap ``transport``: writes within one loop step become one write; everything else passes through.

    ``close`` sends what is pending first; ``abort`` drops it (as the real abort drops its buffer).
    """

    __slots__ = ("_loop", "_pending", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, chunks: Any) -> None:
        for data in chunks:
            self.write(data)

    def flush(self) -> None:
        """Hand everything pending to the real transport now (one write)."""
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info, ...
        return getattr(self._transport, name)


class HttpToolsProtocol(_UvicornHttpTools):
    """uvicorn's httptools HTTP/1.1 protocol writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
