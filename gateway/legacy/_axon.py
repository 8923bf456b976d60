"""The legacy axon endpoint: ``GET|POST /{SynapseName}`` for bittensor <= 10 dendrites, as pure ASGI.

:class:`LegacyAxon` answers every request that carries ``bt_header_dendrite_*`` headers on a
one-segment path, in front of the gateway's FastAPI stack (``gateway.app`` asks it first), so
``POST /Inference`` reaches it when a v10 dendrite signed it and reaches the btauth/1 route
otherwise. It answers every error itself, counts its requests in the gateway's metrics (by
caller once the policy accepted the hotkey) and signs its unary answers' headers when the
gateway has a signer; it never raises to the server.

Per request: auth headers parsed (400) -> body read under the size cap (413, 408) and parsed
into the synapse's shape (400) -> body hash, freshness and signature for this miner's hotkey
(401) -> policy identity (403; checked before the nonce is recorded, so refused hotkeys leave no
replay state) -> monotonic nonce (401) -> rate and concurrency (429) -> request validation
(422) -> in-flight slot in stake order (503) -> the service. Every answer carries
``bt_header_axon_status_code``/``_message``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway._body import receive_body
from gateway._errors import GatewayError
from gateway._generation import Generation
from gateway._streaming import stream_response, unary_answer
from gateway.admission import AdmissionQueue
from gateway.config import GatewayConfig
from gateway.legacy._wire import (
    LEGACY_SYNAPSES,
    CapabilitiesBody,
    InferenceBody,
    LegacySynapse,
    capabilities_outputs,
    echo_body,
    error_body,
    load_object,
    status_headers,
)
from gateway.metrics import GatewayMetrics, StatusRecorder
from gateway.policy import Policy
from gateway.service import InferenceService, ServiceError
from protocol.auth import AuthErrorCode, AuthFailure
from protocol.auth import legacy as legacy_auth
from protocol.errors import describe_validation_error
from protocol.response_signing import RequestBinding, sign_unary
from protocol.synapses import InferenceRequest

__all__ = ["LegacyAxon"]

_PREFIX = legacy_auth.LEGACY_HEADER_PREFIX.encode()
_CLAIMED_METHODS = frozenset({"GET", "POST"})
_DISCONNECTED = 499  # metrics only: the caller left before an answer could be sent
_JSON = (b"content-type", b"application/json")
_READ_HEADERS = frozenset({b"computed_body_hash", b"content-length", b"timeout"})


@dataclass(frozen=True, slots=True)
class _Echo:
    """A successful answer: the request synapse to echo back with these outputs filled in."""

    request_body: dict[str, Any]
    outputs: Any
    """A dict of output fields, or a pydantic model whose fields of the synapse's outputs are dumped."""


@dataclass(slots=True)
class _Exchange:
    """What one request has established so far: decides the answer's signature and metrics label."""

    started_s: float
    headers: dict[str, str]
    raw_body: bytes = b""
    caller: str | None = None
    """Hotkey whose signature verified; answers bound to it are signed."""
    nonce: str = ""
    admitted: bool = False
    """The policy accepted the hotkey: metrics may name it."""


class LegacyAxon:
    """Serve bittensor <= 10 dendrites for one gateway (see the module docstring).

    ``admission`` is the gateway's in-flight queue (shared with the btauth/1 routes);
    ``model_name`` is an async callable naming the served model; ``signer`` is the miner's
    hotkey ``Keypair`` or None for unsigned answers. Legacy streams are never signed: their wire
    format has no room for a signature line and headers leave before the body exists.
    """

    def __init__(
        self,
        service: InferenceService,
        *,
        hotkey_ss58: str,
        config: GatewayConfig,
        policy: Policy,
        admission: AdmissionQueue,
        model_name: Callable[[], Any],
        metrics: GatewayMetrics,
        nonce_store: legacy_auth.MonotonicNonceStore | None = None,
        signer: Any | None = None,
    ) -> None:
        self._service = service
        self._hotkey = hotkey_ss58
        self._config = config
        self._policy = policy
        self._admission = admission
        self._model_name = model_name
        self._metrics = metrics
        self._store = nonce_store if nonce_store is not None else legacy_auth.InMemoryMonotonicNonceStore()
        self._signer = signer
        self._available = list(LEGACY_SYNAPSES)
        self._routes = {name: f"/{name}" for name in LEGACY_SYNAPSES}

    def claim(self, scope: Scope) -> dict[str, str] | None:
        """The headers this endpoint reads if ``scope`` is a legacy request, else None.

        Legacy requests are GET or POST on ``/{name}`` carrying ``bt_header_dendrite_*`` headers.
        Headers are by (lower-case) name; the first of repeated ones wins, as in Starlette.
        """
        if scope["type"] != "http" or scope["method"] not in _CLAIMED_METHODS:
            return None
        path = _relative_path(scope)
        if len(path) < 2 or path[0] != "/" or "/" in path[1:]:
            return None
        headers: dict[str, str] = {}
        legacy = False
        for key, value in scope["headers"]:
            if key.startswith(b"bt_header_"):
                legacy = legacy or key.startswith(_PREFIX)
            elif key not in _READ_HEADERS:
                continue
            name = key.decode("latin-1")
            if name not in headers:
                headers[name] = value.decode("latin-1")
        return headers if legacy else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        """Answer a request :meth:`claim` accepted (``headers`` from it); never raises for what the caller sent."""
        exchange = _Exchange(time.perf_counter(), headers)
        name = _relative_path(scope)[1:]
        synapse = LEGACY_SYNAPSES.get(name)
        status = 500
        try:
            if synapse is None:
                message = f"Synapse name '{name}' not found. Available synapses {self._available}"
                status = await self._send(send, "Synapse", 404, error_body(message), exchange, message=message)
                return
            status = await self._answer(scope, receive, send, synapse, exchange)
        except ClientDisconnect:
            status = _DISCONNECTED
        finally:
            route = self._routes.get(name, "other")
            caller = exchange.caller if exchange.admitted and exchange.caller is not None else "-"
            self._metrics.observe_request(route, status, caller, time.perf_counter() - exchange.started_s)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, synapse: LegacySynapse, exchange: _Exchange
    ) -> int:
        """Serve and send; returns the status sent. Errors become ``{"message"}`` answers."""
        extra: dict[str, str] | None = None
        try:
            served = await self._serve(scope, receive, synapse, exchange)
            if isinstance(served, Response):
                return await self._stream(scope, receive, send, synapse, served, exchange)
            process_time = str(time.perf_counter() - exchange.started_s)
            body = echo_body(served.request_body, served.outputs, axon_hotkey=self._hotkey, process_time=process_time)
            return await self._send(send, synapse.name, 200, body, exchange, process_time=process_time)
        except AuthFailure as failure:
            exchange.caller = None  # never bind an answer to an identity that did not verify
            status = 400 if failure.code is AuthErrorCode.MALFORMED else 401
            message = f"Not Verified with error: {failure.message}"
        except GatewayError as exc:
            status, message, extra = exc.status, exc.detail, exc.headers
        except ClientDisconnect:
            raise
        except Exception as exc:
            logger.opt(exception=exc).error("unhandled error on legacy {} {}", scope["method"], scope["path"])
            status, message = 500, "Internal Server Error"
        body = error_body(message)
        return await self._send(send, synapse.name, status, body, exchange, message=message, extra=extra)

    async def _serve(
        self, scope: Scope, receive: Receive, synapse: LegacySynapse, exchange: _Exchange
    ) -> _Echo | Response:
        headers = exchange.headers
        auth_headers = legacy_auth.parse_headers(headers)
        config = self._config
        declared, limit = headers.get("content-length"), config.max_body_bytes
        raw = await receive_body(receive, declared, limit, timeout_s=config.body_timeout_s)
        exchange.raw_body = raw
        request_body = load_object(raw)
        try:
            parsed = synapse.body.model_validate(request_body)
        except ValidationError as exc:
            detail = f"body is not a {synapse.name} synapse: {_first(exc)}"
            raise GatewayError(400, "malformed_synapse", detail) from None
        fields = parsed.model_dump()

        def check_identity(hotkey_ss58: str) -> None:  # the signature verified; the nonce is not recorded yet
            exchange.caller, exchange.nonce = hotkey_ss58, str(auth_headers.nonce_ns)
            self._policy.check_identity(hotkey_ss58)

        caller = await legacy_auth.verify(
            auth_headers,
            received_body_hash=legacy_auth.body_hash(fields, parsed.hash_fields),
            self_hotkey_ss58=self._hotkey,
            nonce_store=self._store,
            max_age_s=config.auth_max_age_s,
            allowed_skew_s=config.auth_allowed_skew_s,
            before_recording=check_identity,
        )
        exchange.admitted = True
        lease = await self._policy.acquire(caller.hotkey_ss58)
        if isinstance(parsed, CapabilitiesBody):
            lease.release()
            return await self._capabilities(request_body)
        assert isinstance(parsed, InferenceBody)
        try:
            request = _inference_request(fields, stream=synapse.streaming)
            release_slot = await self._admission.acquire(caller.hotkey_ss58)
        except BaseException:
            lease.release()
            raise
        return await self._inference(synapse, request, request_body, headers, lease, release_slot, caller.hotkey_ss58)

    async def _capabilities(self, request_body: dict[str, Any]) -> _Echo:
        try:
            async with asyncio.timeout(self._config.request_timeout_s):
                answer = await self._service.capabilities()
        except TimeoutError:
            raise GatewayError(504, "timeout", "the service did not describe itself in time") from None
        except ServiceError as exc:
            raise _from_service_error(exc) from None
        return _Echo(request_body, capabilities_outputs(answer))

    async def _inference(
        self,
        synapse: LegacySynapse,
        request: InferenceRequest,
        request_body: dict[str, Any],
        headers: dict[str, str],
        lease: Any,
        release_slot: Callable[[], None],
        hotkey_ss58: str,
    ) -> _Echo | Response:
        handed_over = False
        try:
            timeout_s = _deadline_s(headers.get("timeout", ""), self._config.request_timeout_s)
            try:
                chunks = self._service.infer(request)
            except ServiceError as exc:
                raise _from_service_error(exc) from None
            generation = Generation(chunks, timeout_s=timeout_s)
            metrics = self._metrics

            def finish() -> None:
                lease.release()
                release_slot()
                if generation.ttft_s is not None:
                    metrics.observe_ttft(generation.ttft_s)
                metrics.count_tokens(hotkey_ss58, generation.completion_tokens)

            if synapse.streaming:
                keepalive_s = self._config.sse_keepalive_s
                response = await stream_response(
                    generation, sse=False, keepalive_s=keepalive_s, timeout_s=timeout_s, on_close=finish
                )
                handed_over = True
                return response
            try:
                answer = await unary_answer(generation, model=await self._model_name(), timeout_s=timeout_s)
            finally:
                handed_over = True
                finish()
            return _Echo(request_body, answer)
        finally:
            if not handed_over:
                lease.release()
                release_slot()

    async def _send(
        self,
        send: Send,
        name: str,
        status: int,
        body: bytes,
        exchange: _Exchange,
        *,
        message: str = "Success",
        extra: dict[str, str] | None = None,
        process_time: str | None = None,
    ) -> int:
        headers = [_JSON, (b"content-length", str(len(body)).encode())]
        if extra:
            headers += [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in extra.items()]
        if process_time is None:
            process_time = str(time.perf_counter() - exchange.started_s)
        headers += status_headers(name, status, message, axon_hotkey=self._hotkey, process_time=process_time)
        if self._signer is not None and exchange.caller is not None:
            binding = RequestBinding.of(
                miner_ss58=self._hotkey, caller_ss58=exchange.caller, request_nonce=exchange.nonce,
                request_body=exchange.raw_body,
            )  # fmt: skip
            signed = sign_unary(self._signer, binding, status=status, body=body)
            headers += [(key.lower().encode(), value.encode()) for key, value in signed.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, synapse: LegacySynapse, response: Response, e: _Exchange
    ) -> int:
        """Send a stream as its chunks come, with the success status headers (unsigned, see the class)."""
        elapsed = str(time.perf_counter() - e.started_s)
        headers = status_headers(synapse.name, 200, "Success", axon_hotkey=self._hotkey, process_time=elapsed)
        response.raw_headers += headers
        recorder = StatusRecorder(send)
        try:
            await response(scope, receive, recorder)
        except Exception as exc:
            if not recorder.started or isinstance(exc, ClientDisconnect):
                raise
            logger.opt(exception=exc).error("legacy stream failed after it started; the caller sees it cut short")
        return recorder.status


def _relative_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _first(exc: ValidationError) -> str:
    return describe_validation_error(exc, limit=1, root="body")


def _inference_request(fields: dict[str, Any], *, stream: bool) -> InferenceRequest:
    """The typed request behind a verified body (its ``InferenceBody`` dump); 422 naming the first invalid field."""
    try:
        return InferenceRequest.model_validate({**fields, "stream": stream})
    except ValidationError as exc:
        raise GatewayError(422, "invalid_request", _first(exc)) from None


def _deadline_s(header: str, limit_s: float) -> float:
    """The gateway's own limit, shortened to the dendrite's ``timeout`` header (it stops waiting then)."""
    try:
        timeout_s = float(header)
    except ValueError:
        return limit_s
    return min(limit_s, timeout_s) if 0.0 < timeout_s < float("inf") else limit_s


def _from_service_error(exc: ServiceError) -> GatewayError:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return GatewayError(exc.status, exc.code, exc.message, headers=headers)
