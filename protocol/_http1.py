"""A lean HTTP/1.1 transport for plain-HTTP requests to miners, with per-address keep-alive.

httpcore's pool scans every pooled connection on each request (an O(pool) pass with a
``getpeername`` syscall per connection), which dominated the client's CPU at a validator's
fan-out. This transport keeps one deque of idle connections per ``host:port``: taking or
returning a connection is O(1). It speaks only what a miner needs: one request with a byte body,
a response framed by ``Content-Length``, chunked transfer coding or connection close, streamed
to the caller piece by piece as it arrives. Everything else (``https``, requests with extensions
such as a TLS pin, streamed request bodies) goes to the ``fallback`` transport. Failures raise
httpx's own exceptions, so callers map them exactly as for any httpx transport.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

import httpx

__all__ = ["Http1Transport"]

_READ_PIECE_BYTES = 64 * 1024
_MAX_HEAD_BYTES = 64 * 1024
_OWN_EXTENSIONS = frozenset({"timeout"})
"""Request extensions this transport honours; a request carrying any other (a TLS pin, a trace
hook) goes to the fallback, which knows what it means."""
_IDLE_EXPIRY_S = 15.0
"""Idle connections older than this are closed rather than reused (servers drop them at 5-75 s)."""


class _Connection:
    __slots__ = ("idle_since_s", "key", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: tuple[str, int]) -> None:
        self.reader = reader
        self.writer = writer
        self.key = key
        self.idle_since_s = 0.0

    def usable(self, now_s: float) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing() and now_s - self.idle_since_s < _IDLE_EXPIRY_S

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A reused connection was closed by the server before any response byte: safe to resend."""


class Http1Transport(httpx.AsyncBaseTransport):
    """Plain HTTP/1.1 with O(1) keep-alive pools per address; ``fallback`` serves everything else.

    ``max_connections`` bounds requests in flight through this transport (waiting up to the
    request's ``pool`` timeout) and the idle connections kept across all addresses.
    """

    def __init__(self, fallback: httpx.AsyncBaseTransport, *, max_connections: int) -> None:
        self._fallback = fallback
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._idle_count = 0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if (
            url.scheme != "http"
            or request.extensions.keys() - _OWN_EXTENSIONS
            or not isinstance(request.stream, httpx.ByteStream)
        ):
            return await self._fallback.handle_async_request(request)
        timeouts = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection slot in time", request=request) from None
        try:
            return await self._send(request, (url.host, url.port or 80), timeouts)
        except BaseException:
            self._slots.release()
            raise

    async def _send(
        self, request: httpx.Request, key: tuple[str, int], timeouts: dict[str, float | None]
    ) -> httpx.Response:
        payload = _encode(request)
        connection = self._take_idle(key)
        if connection is not None:
            try:
                return await self._exchange(connection, request, payload, timeouts, reused=True)
            except _Stale:
                pass
        connection = await _connect(key, timeouts.get("connect"), request)
        try:
            return await self._exchange(connection, request, payload, timeouts, reused=False)
        except _Stale:
            raise httpx.RemoteProtocolError(
                "server closed the connection without a response", request=request
            ) from None

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now_s = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.usable(now_s):
                return connection
            connection.close()
        return None

    def _give_back(self, connection: _Connection | None) -> None:
        self._slots.release()
        if connection is None:
            return
        if self._closed or self._idle_count >= self._max_idle:
            connection.close()
            return
        connection.idle_since_s = time.monotonic()
        self._idle.setdefault(connection.key, deque()).append(connection)
        self._idle_count += 1

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        payload: bytes,
        timeouts: dict[str, float | None],
        *,
        reused: bool,
    ) -> httpx.Response:
        try:
            connection.writer.write(payload)
            async with asyncio.timeout(timeouts.get("write")):
                await connection.writer.drain()
            async with asyncio.timeout(timeouts.get("read")):
                status, headers, keep_alive = await _read_head(connection.reader)
        except BaseException as exc:
            connection.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            if reused and _closed_before_answer(exc):
                raise _Stale from None
            raise _transport_error(exc, request, reading=True) from None
        framing = _framing(headers, status, request.method)
        stream = _Body(self, connection, framing, keep_alive, timeouts.get("read"), request)
        return httpx.Response(status, headers=headers, stream=stream, extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        self._idle_count = 0
        await self._fallback.aclose()


def _encode(request: httpx.Request) -> bytes:
    target = request.url.raw_path
    lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
    lines.extend(name + b": " + value for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.content


async def _connect(key: tuple[str, int], timeout_s: float | None, request: httpx.Request) -> _Connection:
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(key[0], key[1], limit=_MAX_HEAD_BYTES)
    except TimeoutError:
        raise httpx.ConnectTimeout(f"connecting to {key[0]}:{key[1]} timed out", request=request) from None
    except OSError as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
    return _Connection(reader, writer, key)


def _closed_before_answer(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.IncompleteReadError):
        return not exc.partial
    return isinstance(exc, ConnectionResetError | BrokenPipeError)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]], bool]:
    """Status, headers and whether the connection may be reused; skips interim 1xx answers."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}")
            headers.append((name, value.strip()))
        status = int(code)
        if 100 <= status < 200 and status != 101:
            continue
        connection_tokens = b",".join(v for n, v in headers if n.lower() == b"connection").lower()
        keep_alive = version == b"HTTP/1.1" and b"close" not in connection_tokens
        return status, headers, keep_alive


def _framing(headers: list[tuple[bytes, bytes]], status: int, method: str) -> int | str:
    """The body's length in bytes, ``"chunked"``, or ``"close"`` (read to the end of the connection)."""
    if method == "HEAD" or status in (204, 304):
        return 0
    encodings = [v.lower() for n, v in headers if n.lower() == b"transfer-encoding"]
    if encodings:
        if encodings[-1].rsplit(b",", 1)[-1].strip() != b"chunked":
            return "close"
        return "chunked"
    lengths = {v for n, v in headers if n.lower() == b"content-length"}
    if not lengths:
        return "close"
    if len(lengths) != 1 or not (value := lengths.pop()).isdigit():
        raise httpx.RemoteProtocolError("invalid Content-Length")
    return int(value)


def _transport_error(exc: BaseException, request: httpx.Request, *, reading: bool) -> httpx.TransportError:
    if isinstance(exc, httpx.TransportError):
        exc.request = request
        return exc
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout("timed out reading the response", request=request)
    if isinstance(exc, asyncio.LimitOverrunError | ValueError):
        return httpx.RemoteProtocolError(f"malformed response: {exc}", request=request)
    if isinstance(exc, asyncio.IncompleteReadError):
        return httpx.RemoteProtocolError("server closed the connection mid-response", request=request)
    error = httpx.ReadError if reading else httpx.WriteError
    return error(f"{type(exc).__name__}: {exc}", request=request)


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; hands the connection back once read to its end."""

    def __init__(
        self,
        transport: Http1Transport,
        connection: _Connection,
        framing: int | str,
        keep_alive: bool,
        read_timeout_s: float | None,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._framing = framing
        self._keep_alive = keep_alive and framing != "close"
        self._read_timeout_s = read_timeout_s
        self._request = request
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        reader = connection.reader
        try:
            if isinstance(self._framing, int):
                async for piece in self._exact(reader, self._framing):
                    yield piece
            elif self._framing == "chunked":
                async for piece in self._chunked(reader):
                    yield piece
            else:
                while piece := await self._read(reader.read(_READ_PIECE_BYTES)):
                    yield piece
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            await self.aclose()
            raise _transport_error(exc, self._request, reading=True) from None
        self._complete = True

    async def _read(self, reading: object) -> bytes:
        async with asyncio.timeout(self._read_timeout_s):
            return await reading  # type: ignore[misc]

    async def _exact(self, reader: asyncio.StreamReader, size: int) -> AsyncIterator[bytes]:
        remaining = size
        while remaining > 0:
            piece = await self._read(reader.read(min(remaining, _READ_PIECE_BYTES)))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)
            yield piece

    async def _chunked(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while True:
            line = await self._read(reader.readuntil(b"\r\n"))
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise ValueError(f"bad chunk size {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while (await self._read(reader.readuntil(b"\r\n"))) != b"\r\n":
                    pass  # trailers: ignored
                return
            async for piece in self._exact(reader, size):
                yield piece
            if await self._read(reader.readexactly(2)) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if not (self._complete and self._keep_alive):
            connection.close()
            connection = None
        self._transport._give_back(connection)
