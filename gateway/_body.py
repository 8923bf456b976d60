"""Read a request body under a byte cap and a time limit, once per request."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from gateway._eager import resume, step
from gateway._errors import GatewayError

__all__ = ["DEFAULT_BODY_TIMEOUT_S", "read_body", "receive_body"]

_STATE_KEY = "raw_body"


DEFAULT_BODY_TIMEOUT_S = 10.0
"""Same as ``GatewayConfig.body_timeout_s``'s default."""


async def read_body(request: Request, max_bytes: int, *, timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> bytes:
    """Return the raw body of a Starlette request, reading it at most once (see :func:`receive_body`).

    The body is read from the raw ASGI ``receive`` and cached on ``request.state``: always read it
    through this function, never ``request.body()``.
    """
    cached = getattr(request.state, _STATE_KEY, None)
    if cached is not None:
        return cached
    declared = request.headers.get("content-length")
    body = await receive_body(request.receive, declared, max_bytes, timeout_s=timeout_s)
    setattr(request.state, _STATE_KEY, body)
    return body


async def receive_body(
    receive: Receive, declared: str | None, max_bytes: int, *, timeout_s: float = DEFAULT_BODY_TIMEOUT_S
) -> bytes:
    """The whole body from an ASGI ``receive``; 413 as soon as it passes ``max_bytes``, 408 after ``timeout_s``.

    The declared ``Content-Length`` is checked before reading and the bytes actually received
    while reading, so neither a lying header nor a chunked upload can exceed the cap. A body
    that takes longer than ``timeout_s`` to arrive is answered 408 (slow-sender protection).
    Raises ``ClientDisconnect`` when the caller leaves first.
    """
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(400, "bad_content_length", "Content-Length is not a non-negative integer")
        if int(declared) > max_bytes:
            raise GatewayError(413, "body_too_large", f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    collect = _collect(receive, max_bytes)
    try:
        done, value = step(collect)  # a body already buffered is read without arming the timer
        if not done:
            async with asyncio.timeout(timeout_s):
                value = await resume(collect, value)
    except TimeoutError:
        raise GatewayError(408, "body_timeout", f"body did not arrive within {timeout_s:g}s") from None
    return value


async def _collect(receive: Receive, max_bytes: int) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        if message["type"] != "http.request":
            continue
        piece: bytes = message.get("body", b"")
        size += len(piece)
        if size > max_bytes:
            raise GatewayError(413, "body_too_large", f"body exceeds the {max_bytes}-byte limit")
        if not message.get("more_body", False):
            return b"".join((*pieces, piece)) if pieces else piece
        pieces.append(piece)
