"""``create_app``: the miner's FastAPI gateway around an :class:`InferenceService`.

Routes: ``POST /Inference`` (unary JSON, or a stream: NDJSON by default, SSE on
``Accept: text/event-stream``), ``POST /Capabilities``, ``GET /health``, ``GET /metrics``.
Each signed route runs: size-capped body read -> signature verification -> policy (403/429) ->
in-flight cap (waits by caller stake, then 503) -> JSON parsing (400/422) -> the service. Every rejection is a JSON
``ErrorBody``; nothing a caller sends can stop the process from serving. Requests signed by
bittensor <= 10 dendrites are answered before FastAPI sees them (``gateway.legacy.LegacyAxon``).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway._body import read_body
from gateway._errors import GatewayError, error_response
from gateway._generation import Generation
from gateway._streaming import SSE_MEDIA_TYPE, stream_response, unary_response
from gateway.admission import AdmissionQueue
from gateway.auth import Authenticator, BtAuthScheme, Caller
from gateway.config import GatewayConfig
from gateway.epistula import EpistulaScheme, InMemoryUuidStore, UuidStore
from gateway.legacy import LegacyAxon
from gateway.metrics import GatewayMetrics, MetricsMiddleware, label_caller
from gateway.policy import Lease, Policy
from gateway.response_signing import ResponseSigningMiddleware
from gateway.service import InferenceService, ServiceError
from gateway.stores import InMemoryNonceStore, NonceStore
from protocol.auth.legacy import MonotonicNonceStore
from protocol.errors import describe_validation_error
from protocol.synapses import CapabilitiesRequest, CapabilitiesResponse, InferenceRequest, SynapseName

__all__ = ["create_app"]

_INFERENCE = f"/{SynapseName.INFERENCE.value}"
_CAPABILITIES = f"/{SynapseName.CAPABILITIES.value}"
_ROUTES = (_INFERENCE, _CAPABILITIES, "/health", "/metrics")
_M = TypeVar("_M", bound=BaseModel)


def create_app(
    service: InferenceService,
    *,
    hotkey_ss58: str,
    config: GatewayConfig,
    policy: Policy,
    nonce_store: NonceStore | None = None,
    registry: CollectorRegistry | None = None,
    legacy_nonce_store: MonotonicNonceStore | None = None,
    epistula_store: UuidStore | None = None,
    signer: Any | None = None,
) -> Any:
    """Build the gateway app serving ``service`` as the miner ``hotkey_ss58``.

    ``nonce_store`` defaults to a per-process in-memory store (use a shared one behind several
    workers); ``registry`` defaults to a fresh registry, so apps never share series. The
    authenticator is ``app.state.authenticator`` (override it in tests via
    ``app.dependency_overrides``); metrics are ``app.state.metrics``.
    ``epistula_store`` is the Epistula v2 uuid replay cache (same default). With
    ``config.redis_url`` set, all three replay stores must be given (``gateway.state.build_stores``).
    ``signer`` is the miner's hotkey ``Keypair``: every answer to an authenticated caller is then
    signed with it (axongate-response/1, ``gateway.response_signing``); None leaves answers unsigned.
    Raises ``ValueError`` when the nonce store retains entries for less than the auth window.
    """
    if signer is not None and signer.ss58_address != hotkey_ss58:
        raise ValueError(f"signer {signer.ss58_address} is not the miner hotkey {hotkey_ss58}")
    if config.redis_url is not None and None in (nonce_store, legacy_nonce_store, epistula_store):
        raise ValueError("config.redis_url is set: pass the shared stores from gateway.state.build_stores()")
    window_s = config.auth_max_age_s + config.auth_allowed_skew_s
    store = nonce_store if nonce_store is not None else InMemoryNonceStore(retention_s=max(60.0, 2 * window_s))
    scheme = BtAuthScheme(
        hotkey_ss58, store, max_age_s=config.auth_max_age_s, allowed_skew_s=config.auth_allowed_skew_s
    )
    uuids = epistula_store if epistula_store is not None else InMemoryUuidStore(retention_s=max(60.0, 2 * window_s))
    epistula = EpistulaScheme(
        hotkey_ss58, uuids, max_age_s=config.auth_max_age_s, allowed_skew_s=config.auth_allowed_skew_s
    )
    authenticator = Authenticator(
        [scheme, epistula],
        max_body_bytes=config.max_body_bytes,
        body_timeout_s=config.body_timeout_s,
        check_identity=policy.check_identity,
    )
    metrics = GatewayMetrics(registry if registry is not None else CollectorRegistry())
    in_flight = AdmissionQueue(
        max_in_flight=config.max_in_flight,
        max_waiting=config.admission_queue_size,
        max_wait_s=config.admission_max_wait_s,
        retry_after_s=config.retry_after_s,
        priority=policy.stake_of,
    )
    metrics.in_flight.set_function(lambda: in_flight.in_flight)  # read when scraped, not set per request

    async def admit(request: Request, caller: Caller) -> tuple[Lease, bytes]:
        """The raw body (read by auth, or now when auth is overridden) and the policy's lease."""
        body = await read_body(request, config.max_body_bytes, timeout_s=config.body_timeout_s)
        policy.check_identity(caller.hotkey_ss58)  # done by the Authenticator too; kept for overridden auth
        label_caller(request, caller.hotkey_ss58)
        return await policy.acquire(caller.hotkey_ss58), body

    capabilities_cache: list[CapabilitiesResponse] = []

    app = _GatewayApp(title="axongate miner gateway", docs_url=None, redoc_url=None)
    app.state.authenticator = authenticator
    app.state.metrics = metrics
    app.state.admission = in_flight
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=_ROUTES)
    if signer is not None:
        app.add_middleware(ResponseSigningMiddleware, signer=signer)
    _add_error_handlers(app)

    async def model_name() -> str:
        if not capabilities_cache:
            try:
                capabilities_cache.append(await service.capabilities())
            except Exception:
                return ""
        return capabilities_cache[0].model

    @app.post(_INFERENCE, response_model=None, openapi_extra=_body_schema(InferenceRequest))
    async def inference(request: Request, caller: Caller = Depends(authenticator)) -> Response:
        lease, body = await admit(request, caller)
        try:
            release = await in_flight.acquire(caller.hotkey_ss58)
        except BaseException:
            lease.release()
            raise
        handed_over = False
        try:
            parsed = _parse(InferenceRequest, body)
            generation = Generation(_start(service, parsed), timeout_s=config.request_timeout_s)

            def finish() -> None:
                lease.release()
                release()
                if generation.ttft_s is not None:
                    metrics.observe_ttft(generation.ttft_s)
                metrics.count_tokens(caller.hotkey_ss58, generation.completion_tokens)

            if not parsed.stream:
                try:
                    model = await model_name()
                    return await unary_response(generation, model=model, timeout_s=config.request_timeout_s)
                finally:
                    finish()
            sse = SSE_MEDIA_TYPE in request.headers.get("accept", "")
            response = await stream_response(
                generation,
                sse=sse,
                keepalive_s=config.sse_keepalive_s,
                timeout_s=config.request_timeout_s,
                on_close=finish,
            )
            handed_over = True
            return response
        finally:
            if not handed_over:
                lease.release()
                release()

    @app.post(_CAPABILITIES, response_model=CapabilitiesResponse)
    async def capabilities(request: Request, caller: Caller = Depends(authenticator)) -> Response:
        lease, body = await admit(request, caller)
        lease.release()
        if body.strip():
            _parse(CapabilitiesRequest, body)
        try:
            async with asyncio.timeout(config.request_timeout_s):
                answer = await service.capabilities()
        except TimeoutError:
            raise GatewayError(504, "timeout", "the service did not describe itself in time") from None
        except ServiceError as exc:
            raise _from_service_error(exc) from None
        capabilities_cache[:] = [answer]
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # bittensor <= 10 dendrites (bt_header_* headers): answered before FastAPI's stack sees them.
    app.legacy = LegacyAxon(
        service, hotkey_ss58=hotkey_ss58, config=config, policy=policy, admission=in_flight,
        model_name=model_name, metrics=metrics, nonce_store=legacy_nonce_store, signer=signer,
    )  # fmt: skip
    return app


class _GatewayApp(FastAPI):
    """FastAPI with the legacy axon endpoint in front: legacy requests never enter its middleware.

    The legacy wire is the hot path for v10 validators; :class:`LegacyAxon` is pure ASGI and does
    its own error answers, metrics and signing, so skipping Starlette's layers changes nothing
    a caller sees.
    """

    legacy: LegacyAxon | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        legacy = self.legacy
        if legacy is not None and (headers := legacy.claim(scope)) is not None:
            await legacy(scope, receive, send, headers)
            return
        await super().__call__(scope, receive, send)


def _start(service: InferenceService, request: InferenceRequest) -> Any:
    try:
        return service.infer(request)
    except ServiceError as exc:
        raise _from_service_error(exc) from None


def _from_service_error(exc: ServiceError) -> GatewayError:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return GatewayError(exc.status, exc.code, exc.message, headers=headers)


def _parse(model: type[_M], body: bytes) -> _M:
    """Validate a JSON body: 400 when it is not JSON, 422 naming the first invalid field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            raise GatewayError(400, "malformed_json", f"body is not valid JSON: {first['msg']}") from None
        raise GatewayError(422, "invalid_request", describe_validation_error(exc, limit=1, root="body")) from None


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI request body for routes that parse their body themselves (after authentication)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # OpenAPI resolves "$ref" against the whole document: inline them
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        return [inline(value) for value in node] if isinstance(node, list) else node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


def _add_error_handlers(app: FastAPI) -> None:
    async def on_gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return error_response(404, "not_found", f"no route {request.method} {request.url.path}")
        if exc.status_code == 405:
            return error_response(405, "method_not_allowed", f"{request.url.path} does not accept {request.method}")
        return error_response(exc.status_code, "http_error", str(exc.detail), exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ())) or "request"
        return error_response(422, "invalid_request", f"{where}: {first.get('msg')}")

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
        return error_response(500, "internal_error", "the miner failed to handle this request")

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
