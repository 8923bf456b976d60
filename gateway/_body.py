"""Read a request body under a byte cap, once per request."""

from __future__ import annotations

from starlette.requests import Request

from gateway._errors import GatewayError

__all__ = ["read_body"]

_STATE_KEY = "raw_body"


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Return the raw body, reading it at most once; 413 as soon as it passes ``max_bytes``.

    The declared ``Content-Length`` is checked before reading and the bytes actually received
    while reading, so neither a lying header nor a chunked upload can exceed the cap.
    """
    cached = getattr(request.state, _STATE_KEY, None)
    if cached is not None:
        return cached
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(400, "bad_content_length", "Content-Length is not a non-negative integer")
        if int(declared) > max_bytes:
            raise GatewayError(413, "body_too_large", f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    buffer = bytearray()
    async for piece in request.stream():
        buffer += piece
        if len(buffer) > max_bytes:
            raise GatewayError(413, "body_too_large", f"body exceeds the {max_bytes}-byte limit")
    body = bytes(buffer)
    setattr(request.state, _STATE_KEY, body)
    return body
