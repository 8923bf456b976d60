"""The legacy axon route: ``GET|POST /{SynapseName}`` for bittensor <= 10 dendrites.

The route matches only requests that carry ``bt_header_dendrite_*`` headers and sits in front
of the gateway's own routes, so ``POST /Inference`` reaches it when a v10 dendrite signed it
and reaches the btauth/1 route otherwise: the headers select the scheme, each scheme answers
in its own shape.

Per request: auth headers parsed (400) -> body read under the size cap (413) and parsed into
the synapse's shape (400) -> body hash, signature for this miner's hotkey, freshness and
monotonic nonce (401) -> policy (403/429) -> request validation (422) -> in-flight cap (503)
-> the service. Every answer carries ``bt_header_axon_status_code``/``_message``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from loguru import logger
from pydantic import ValidationError
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from gateway._body import read_body
from gateway._errors import GatewayError
from gateway._generation import Generation
from gateway._streaming import stream_response, unary_answer
from gateway.auth import Caller
from gateway.config import GatewayConfig
from gateway.legacy._fast import LegacyFastPath
from gateway.legacy._wire import (
    LEGACY_SYNAPSES,
    CapabilitiesBody,
    InferenceBody,
    LegacySynapse,
    capabilities_outputs,
    echo_response,
    error_response,
    inference_outputs,
    status_headers,
)
from gateway.metrics import GatewayMetrics
from gateway.policy import Policy
from gateway.service import InferenceService, ServiceError
from protocol.auth import AuthErrorCode, AuthFailure
from protocol.auth import legacy as legacy_auth
from protocol.errors import describe_validation_error
from protocol.synapses import InferenceRequest

__all__ = ["LEGACY_SCHEME", "mount_legacy"]

LEGACY_SCHEME = "legacy-axon"
"""``Caller.scheme`` of requests verified with the bittensor <= 10 signature."""

_LEGACY_PREFIX = legacy_auth.LEGACY_HEADER_PREFIX.encode()


def _is_legacy(scope: Scope) -> bool:
    return scope["type"] == "http" and any(key.startswith(_LEGACY_PREFIX) for key, _ in scope["headers"])


class LegacyRoute(Route):
    """A Starlette ``Route`` that only matches requests carrying ``bt_header_dendrite_*`` headers.

    A plain route (no FastAPI dependency solving): the handler reads and verifies everything
    itself, in the order the scheme requires.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not _is_legacy(scope):
            return Match.NONE, {}
        return super().matches(scope)


def _auth_status(code: AuthErrorCode) -> int:
    return 400 if code is AuthErrorCode.MALFORMED else 401


class _LegacyHandler:
    """Serves every legacy synapse of one gateway app (see the module docstring for the order)."""

    def __init__(
        self,
        service: InferenceService,
        *,
        hotkey_ss58: str,
        config: GatewayConfig,
        policy: Policy,
        nonce_store: legacy_auth.MonotonicNonceStore,
        enter_in_flight: Callable[[], Callable[[], None]],
        model_name: Callable[[], Any],
        metrics: GatewayMetrics | None,
    ) -> None:
        self._service = service
        self._hotkey = hotkey_ss58
        self._config = config
        self._policy = policy
        self._store = nonce_store
        self._enter_in_flight = enter_in_flight
        self._model_name = model_name
        self._metrics = metrics
        self._available = list(LEGACY_SYNAPSES)

    async def __call__(self, request: Request, synapse_name: str) -> Response:
        started_s = time.perf_counter()
        synapse = LEGACY_SYNAPSES.get(synapse_name)
        if synapse is None:
            message = f"Synapse name '{synapse_name}' not found. Available synapses {self._available}"
            return error_response("Synapse", 404, message, axon_hotkey=self._hotkey, started_s=started_s)
        try:
            return await self._serve(request, synapse, started_s)
        except AuthFailure as failure:
            status = _auth_status(failure.code)
            return self._error(synapse, status, f"Not Verified with error: {failure.message}", started_s)
        except GatewayError as exc:
            return self._error(synapse, exc.status, exc.detail, started_s, exc.headers)
        except Exception as exc:
            logger.opt(exception=exc).error("unhandled error on legacy {} {}", request.method, request.url.path)
            return self._error(synapse, 500, "Internal Server Error", started_s)

    def _error(
        self,
        synapse: LegacySynapse,
        status: int,
        message: str,
        started_s: float,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return error_response(
            synapse.name, status, message, axon_hotkey=self._hotkey, started_s=started_s, extra_headers=headers
        )

    async def _serve(self, request: Request, synapse: LegacySynapse, started_s: float) -> Response:
        auth_headers = legacy_auth.parse_headers(request.headers)
        raw = await read_body(request, self._config.max_body_bytes, timeout_s=self._config.body_timeout_s)
        request_body = _load_object(raw)
        try:
            parsed = synapse.body.model_validate(request_body)
        except ValidationError as exc:
            detail = f"body is not a {synapse.name} synapse: {_first(exc)}"
            raise GatewayError(400, "malformed_synapse", detail) from None
        fields = parsed.model_dump()
        caller = await legacy_auth.verify(
            auth_headers,
            received_body_hash=legacy_auth.body_hash(fields, parsed.hash_fields),
            self_hotkey_ss58=self._hotkey,
            nonce_store=self._store,
            max_age_s=self._config.auth_max_age_s,
            allowed_skew_s=self._config.auth_allowed_skew_s,
        )
        request.state.caller = Caller(hotkey_ss58=caller.hotkey_ss58, scheme=LEGACY_SCHEME, nonce=str(caller.nonce_ns))
        lease = await self._policy.admit(caller.hotkey_ss58)
        if isinstance(parsed, CapabilitiesBody):
            lease.release()
            return await self._capabilities(synapse, request_body, started_s)
        assert isinstance(parsed, InferenceBody)
        return await self._inference(request, synapse, request_body, fields, lease, caller.hotkey_ss58, started_s)

    async def _capabilities(self, synapse: LegacySynapse, request_body: dict[str, Any], started_s: float) -> Response:
        try:
            async with asyncio.timeout(self._config.request_timeout_s):
                answer = await self._service.capabilities()
        except TimeoutError:
            raise GatewayError(504, "timeout", "the service did not describe itself in time") from None
        except ServiceError as exc:
            raise _from_service_error(exc) from None
        outputs = capabilities_outputs(answer)
        return echo_response(synapse.name, request_body, outputs, axon_hotkey=self._hotkey, started_s=started_s)

    async def _inference(
        self,
        request: Request,
        synapse: LegacySynapse,
        request_body: dict[str, Any],
        fields: dict[str, Any],
        lease: Any,
        hotkey_ss58: str,
        started_s: float,
    ) -> Response:
        handed_over = False
        release_in_flight: Callable[[], None] | None = None
        try:
            inference_request = _inference_request(fields, stream=synapse.streaming)
            release_in_flight = self._enter_in_flight()
            timeout_s = _deadline_s(request, self._config.request_timeout_s)
            try:
                chunks = self._service.infer(inference_request)
            except ServiceError as exc:
                raise _from_service_error(exc) from None
            generation = Generation(chunks, timeout_s=timeout_s)  # one loop lookup: a syscall on some hosts

            def finish() -> None:
                lease.release()
                if release_in_flight is not None:
                    release_in_flight()
                if self._metrics is not None:
                    if generation.ttft_s is not None:
                        self._metrics.ttft_s.observe(generation.ttft_s)
                    self._metrics.tokens.labels(hotkey_ss58).inc(generation.completion_tokens)

            if synapse.streaming:
                keepalive_s = self._config.sse_keepalive_s
                response = await stream_response(
                    generation, sse=False, keepalive_s=keepalive_s, timeout_s=timeout_s, on_close=finish
                )
                handed_over = True
                response.headers.update(
                    status_headers(synapse.name, 200, "Success", axon_hotkey=self._hotkey, started_s=started_s)
                )
                return response
            try:
                answer = await unary_answer(generation, model=await self._model_name(), timeout_s=timeout_s)
            finally:
                finish()
                handed_over = True
            outputs = inference_outputs(answer.model_dump_json())
            return echo_response(synapse.name, request_body, outputs, axon_hotkey=self._hotkey, started_s=started_s)
        finally:
            if not handed_over:
                lease.release()
                if release_in_flight is not None:
                    release_in_flight()


def _load_object(raw: bytes) -> dict[str, Any]:
    """The JSON object a dendrite sends (``json.loads``, as the stock axon parses it); 400 otherwise."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise GatewayError(400, "malformed_json", "body is not valid JSON") from None
    if not isinstance(value, dict):
        raise GatewayError(400, "malformed_json", "body must be a JSON object (the synapse's fields)")
    return value


def _first(exc: ValidationError) -> str:
    return describe_validation_error(exc, limit=1, root="body")


def _inference_request(fields: dict[str, Any], *, stream: bool) -> InferenceRequest:
    """The typed request behind a verified body (its ``InferenceBody`` dump); 422 naming the first invalid field."""
    try:
        return InferenceRequest.model_validate({**fields, "stream": stream})
    except ValidationError as exc:
        raise GatewayError(422, "invalid_request", _first(exc)) from None


def _deadline_s(request: Request, limit_s: float) -> float:
    """The gateway's own limit, shortened to the dendrite's ``timeout`` (it stops waiting then)."""
    try:
        timeout_s = float(request.headers.get("timeout", ""))
    except ValueError:
        return limit_s
    return min(limit_s, timeout_s) if 0.0 < timeout_s < float("inf") else limit_s


def _from_service_error(exc: ServiceError) -> GatewayError:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return GatewayError(exc.status, exc.code, exc.message, headers=headers)


def mount_legacy(
    app: FastAPI,
    service: InferenceService,
    *,
    hotkey_ss58: str,
    config: GatewayConfig,
    policy: Policy,
    enter_in_flight: Callable[[], Callable[[], None]],
    model_name: Callable[[], Any],
    metrics: GatewayMetrics | None = None,
    nonce_store: legacy_auth.MonotonicNonceStore | None = None,
) -> None:
    """Serve bittensor <= 10 dendrites on ``app``: one legacy route, placed before every other route.

    ``enter_in_flight`` takes an in-flight slot (raising a 503 ``GatewayError`` when full) and
    returns its release; ``model_name`` is an async callable naming the served model. The nonce
    window is the gateway's btauth window (``auth_max_age_s``/``auth_allowed_skew_s``);
    ``nonce_store`` defaults to a per-process store (use a shared one behind several workers).
    Call it after adding every other middleware: the requests the route would serve with GET or
    POST are dispatched by :class:`LegacyFastPath`, appended as the innermost middleware.
    """
    handler = _LegacyHandler(
        service,
        hotkey_ss58=hotkey_ss58,
        config=config,
        policy=policy,
        nonce_store=nonce_store if nonce_store is not None else legacy_auth.InMemoryMonotonicNonceStore(),
        enter_in_flight=enter_in_flight,
        model_name=model_name,
        metrics=metrics,
    )

    async def legacy_synapse(request: Request) -> Response:
        return await handler(request, request.path_params["synapse_name"])

    route = LegacyRoute("/{synapse_name}", legacy_synapse, methods=["GET", "POST"], include_in_schema=False)
    app.router.routes.insert(0, route)
    if app.middleware_stack is not None:
        raise RuntimeError("mount_legacy must run before the app serves its first request")
    # Innermost middleware: the metrics and response-signing middleware added before still wrap it.
    app.user_middleware.append(Middleware(LegacyFastPath, handler=handler, header_prefix=_LEGACY_PREFIX))
