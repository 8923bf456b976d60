"""Sign every answer to an authenticated caller with the miner's hotkey (axongate-response/1).

:class:`ResponseSigningMiddleware` is pure ASGI and wraps the whole app, so each route, error
answer included, is covered without the handlers knowing. It binds the answer to the caller the
:class:`~gateway.auth.Authenticator` left on ``request.state.caller`` and to the raw request body
it cached; requests that never authenticated (401s, ``/health``, ``/metrics``) stay unsigned.

- Unary answers are buffered (they are complete already) and sent with the signature headers.
- NDJSON and SSE streams pass through line by line; each line's payload extends the hash chain
  and one signature line follows the last one. Keepalives are outside the chain.

Legacy-axon requests (bittensor <= 10 dendrites) never reach this middleware: the legacy
endpoint (``gateway.legacy``) signs its own unary answers. The format is specified in
``docs/response-signing.md``.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway._body import _STATE_KEY as _RAW_BODY_KEY
from protocol.response_signing import RequestBinding, StreamChain, crypto_name, sign_stream, sign_unary

__all__ = ["ResponseSigningMiddleware"]

_NDJSON = "application/x-ndjson"
_SSE = "text/event-stream"


class ResponseSigningMiddleware:
    """Sign responses as ``signer`` (the miner's hotkey ``Keypair``); see the module docstring."""

    def __init__(self, app: ASGIApp, *, signer: Any) -> None:
        crypto_name(signer)  # fail at startup, not per request, on an unusable key
        self._app = app
        self._signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        signer = self._signer
        started: Message | None = None
        unary_binding: RequestBinding | None = None
        mode = "pass"
        unary_body = bytearray()
        stream: _StreamSigner | None = None

        async def signing_send(message: Message) -> None:
            nonlocal started, unary_binding, mode, stream
            if message["type"] == "http.response.start":
                binding = _binding(scope, signer.ss58_address)
                if binding is None:
                    await send(message)
                    return
                media = MutableHeaders(raw=message["headers"]).get("content-type", "").split(";")[0].strip()
                if message["status"] == 200 and media in (_NDJSON, _SSE):
                    mode = "stream"
                    stream = _StreamSigner(signer, StreamChain(binding), sse=media == _SSE)
                    await send(message)
                    return
                mode = "unary"
                started = {**message, "headers": list(message["headers"])}
                unary_binding = binding
                return
            if message["type"] != "http.response.body" or mode == "pass":
                await send(message)
                return
            more = message.get("more_body", False)
            if mode == "stream":
                assert stream is not None
                out = stream.feed(message.get("body", b""), final=not more)
                await send({**message, "body": out})
                return
            unary_body.extend(message.get("body", b""))
            if more:
                return
            assert started is not None and unary_binding is not None
            body = bytes(unary_body)
            headers = MutableHeaders(raw=started["headers"])
            for name, value in sign_unary(signer, unary_binding, status=started["status"], body=body).items():
                headers[name] = value
            await send(started)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self._app(scope, receive, signing_send)


def _binding(scope: Scope, miner_ss58: str) -> RequestBinding | None:
    state = scope.get("state") or {}
    caller = state.get("caller")
    if caller is None:
        return None
    body = state.get(_RAW_BODY_KEY) or b""
    return RequestBinding.of(
        miner_ss58=miner_ss58, caller_ss58=caller.hotkey_ss58, request_nonce=caller.nonce, request_body=body
    )


class _StreamSigner:
    """Feed a stream's bytes as sent; returns them unchanged, plus the signature line at the end."""

    def __init__(self, signer: Any, chain: StreamChain, *, sse: bool) -> None:
        self._signer = signer
        self._chain = chain
        self._sse = sse
        self._pending = bytearray()

    def feed(self, data: bytes, *, final: bool) -> bytes:
        self._pending += data
        separator = b"\n\n" if self._sse else b"\n"
        while (end := self._pending.find(separator)) >= 0:
            self._take(bytes(self._pending[:end]))
            del self._pending[: end + len(separator)]
        if not final:
            return data
        if self._pending.strip():
            self._take(bytes(self._pending))
            self._pending.clear()
            data += b"\n\n" if self._sse else b"\n"
        line = sign_stream(self._signer, self._chain).model_dump_json().encode()
        return data + (b"event: signature\ndata: " + line + b"\n\n" if self._sse else line + b"\n")

    def _take(self, frame: bytes) -> None:
        if not self._sse:
            if frame.strip():
                self._chain.feed(frame)
            return
        data = [line[5:].removeprefix(b" ") for line in frame.split(b"\n") if line.startswith(b"data:")]
        if data:
            self._chain.feed(b"\n".join(data))
