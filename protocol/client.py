"""The async client a validator uses to query miners ("dendrite"): sign, send, stream, time, parse.

One pooled ``httpx.AsyncClient`` serves every miner. Each call is signed with btauth/1 bound to the
miner's hotkey, bounded by a total deadline (the whole stream included) and a response size cap,
and timed at the client: time to first token, total time, tokens/s and the arrival time of every
streamed chunk, so a validator can tell a real stream from a buffered one.

A miner's failure is data, not an exception: every call returns a frozen result with a
:class:`QueryErrorCode` (rule: results across process boundaries). ``raise_for_failure()`` opts
back into exceptions.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError

from protocol._http1 import Http1Transport
from protocol.auth.btauth import BtAuth
from protocol.auth.epistula import EpistulaAuth
from protocol.errors import AxongateError, describe_validation_error
from protocol.response_signing import (
    RequestBinding,
    StreamChain,
    StreamSignature,
    parse_stream_signature,
    request_nonce,
    verify_stream,
    verify_unary,
)
from protocol.synapses import (
    CapabilitiesResponse,
    ErrorBody,
    InferenceChunk,
    InferenceRequest,
    InferenceResponse,
    SynapseName,
)
from protocol.tls_pin import PIN_EXTENSION, CertificateMismatch, PinningTransport

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "NDJSON_MEDIA_TYPE",
    "CapabilitiesResult",
    "MinerClient",
    "MinerTarget",
    "QueryError",
    "QueryErrorCode",
    "QueryResult",
]

NDJSON_MEDIA_TYPE = "application/x-ndjson"
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""A full ``InferenceResponse`` at ``MAX_NEW_TOKENS`` is well under 1 MiB; 4 MiB leaves room."""
_MAX_ERROR_BODY_BYTES = 16 * 1024


class QueryErrorCode(StrEnum):
    """Why a query to a miner failed."""

    TIMEOUT = "timeout"
    """The total deadline (or a read timeout) passed before the answer was complete."""
    CONNECT = "connect"
    """No connection: refused, unreachable, bad address, TLS handshake failed or timed out."""
    HTTP_STATUS = "http_status"
    """The miner answered with a non-2xx status (``status_code`` says which)."""
    MALFORMED = "malformed"
    """The answer is not valid JSON/NDJSON, violates the schema, or the stream never finished."""
    OVERSIZED = "oversized"
    """The answer exceeded the client's size cap; reading stopped there."""
    STREAM_ERROR = "stream_error"
    """The miner started streaming, then reported an error line."""
    TRANSPORT = "transport"
    """The connection broke mid-exchange (reset, protocol error)."""
    UNSIGNED = "unsigned"
    """Response signatures are required and this answer carries none (axongate-response/1)."""
    BAD_SIGNATURE = "bad_signature"
    """The answer's signature is not the miner's over these bytes for this request: tampered or forged."""
    BAD_CERTIFICATE = "bad_certificate"
    """The TLS key is not the one the miner's hotkey published on chain; nothing was sent or read."""


@dataclass(frozen=True, slots=True)
class MinerTarget:
    """Where a miner serves, and the hotkey its requests are signed for."""

    host: str
    port: int
    hotkey_ss58: str
    scheme: Literal["http", "https"] = "http"
    certificate: bytes | None = None
    """The on-chain ``ServeAxonTls`` certificate (algorithm byte + public key); with ``https``, TLS
    is accepted only from a server holding that key (``protocol.tls_pin``)."""

    def url(self, route: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{route}"


class QueryError(AxongateError):
    """Raised by ``raise_for_failure()``; carries the failed result's code and status."""

    def __init__(self, code: QueryErrorCode, message: str, status_code: int | None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Outcome of one ``Inference`` query, measured at the client.

    Times are monotonic seconds since the request was sent. On failure the timings and
    ``chunk_arrivals`` describe what arrived before it, so partial progress can still be judged.
    """

    ok: bool
    response: InferenceResponse | None = None
    error: QueryErrorCode | None = None
    message: str = ""
    status_code: int | None = None
    ttft_s: float | None = None
    """When the first token arrived (for a unary call: when the whole body arrived)."""
    total_s: float | None = None
    tokens_per_s: float | None = None
    """Completion tokens over ``total_s``: the end-to-end rate a caller experiences."""
    chunk_arrivals: tuple[tuple[float, int], ...] = ()
    """``(arrival_s, token_count)`` per streamed chunk, in order; empty for unary calls."""

    def raise_for_failure(self) -> InferenceResponse:
        """Return the response, or raise :class:`QueryError` when the query failed."""
        if not self.ok or self.response is None:
            raise QueryError(self.error or QueryErrorCode.MALFORMED, self.message, self.status_code)
        return self.response


@dataclass(frozen=True, slots=True)
class CapabilitiesResult:
    """Outcome of one ``Capabilities`` query."""

    ok: bool
    capabilities: CapabilitiesResponse | None = None
    error: QueryErrorCode | None = None
    message: str = ""
    status_code: int | None = None
    total_s: float | None = None

    def raise_for_failure(self) -> CapabilitiesResponse:
        """Return the capabilities, or raise :class:`QueryError` when the query failed."""
        if not self.ok or self.capabilities is None:
            raise QueryError(self.error or QueryErrorCode.MALFORMED, self.message, self.status_code)
        return self.capabilities


class _Failure(Exception):
    """Internal: aborts a query; turned into a result at the public boundary."""

    def __init__(self, code: QueryErrorCode, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code


@dataclass
class _Clock:
    """Arrival bookkeeping for one query."""

    start: float = field(default_factory=time.monotonic)
    ttft_s: float | None = None
    arrivals: list[tuple[float, int]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class MinerClient:
    """Query miners over one connection pool; use as ``async with MinerClient(keypair) as client``.

    ``keypair`` is the validator's hotkey ``Keypair`` (``wallet.hotkey``), not the ``Wallet``.
    ``max_response_bytes`` caps every answer (decoded bytes); ``connect_timeout_s`` is the default
    connect bound per call. ``transport`` and ``verify_tls`` are passed to httpx (tests, TLS).
    ``auth_scheme`` picks how requests are signed: ``"btauth"`` (btauth/1, the default) or
    ``"epistula"`` (Epistula v2); both bind each request to the miner's hotkey.
    ``verify_responses`` requires every 200 answer to carry the miner's axongate-response/1
    signature for this request (``protocol.response_signing``): unsigned answers fail with
    ``UNSIGNED``, forged or altered ones with ``BAD_SIGNATURE``. Validators should turn it on.
    A target with a ``certificate`` is reached over TLS pinned to that key (``BAD_CERTIFICATE``).
    """

    def __init__(
        self,
        keypair: Any,
        *,
        max_connections: int = 256,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        connect_timeout_s: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify_tls: Any = True,
        auth_scheme: Literal["btauth", "epistula"] = "btauth",
        verify_responses: bool = False,
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be positive")
        if auth_scheme not in ("btauth", "epistula"):
            raise ValueError(f"auth_scheme must be 'btauth' or 'epistula', not {auth_scheme!r}")
        self._signer = BtAuth if auth_scheme == "btauth" else EpistulaAuth
        self._keypair = keypair
        self._max_response_bytes = max_response_bytes
        self._connect_timeout_s = connect_timeout_s
        self._verify_responses = verify_responses
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            limits=limits,
            transport=transport if transport is not None else _default_transport(verify_tls, limits, max_connections),
            verify=verify_tls,
            trust_env=False,
            follow_redirects=False,
        )

    async def __aenter__(self) -> MinerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def infer(
        self,
        target: MinerTarget,
        request: InferenceRequest,
        *,
        timeout_s: float,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
    ) -> QueryResult:
        """Send one ``Inference`` request (streamed when ``request.stream``); never raises for miner faults.

        ``timeout_s`` bounds the whole call, stream included; ``read_timeout_s`` (default:
        ``timeout_s``) bounds the gap between two reads; ``connect_timeout_s`` bounds connecting.
        """
        clock = _Clock()
        accept = NDJSON_MEDIA_TYPE if request.stream else "application/json"
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._exchange(
                    target,
                    SynapseName.INFERENCE,
                    request,
                    clock=clock,
                    accept=accept,
                    timeout_s=timeout_s,
                    connect_timeout_s=connect_timeout_s,
                    read_timeout_s=read_timeout_s,
                )
        except _Failure as failure:
            return self._failed(failure, clock)
        except TimeoutError:
            failure = _Failure(QueryErrorCode.TIMEOUT, f"no complete answer within the {timeout_s:g}s deadline")
            return self._failed(failure, clock)
        assert isinstance(response, InferenceResponse)
        total_s = clock.elapsed()
        tokens = len(response.token_ids)
        return QueryResult(
            ok=True,
            response=response,
            status_code=200,
            ttft_s=clock.ttft_s if request.stream else total_s,
            total_s=total_s,
            tokens_per_s=tokens / total_s if total_s > 0 else None,
            chunk_arrivals=tuple(clock.arrivals),
        )

    async def capabilities(
        self, target: MinerTarget, *, timeout_s: float, connect_timeout_s: float | None = None
    ) -> CapabilitiesResult:
        """Ask a miner what it serves; never raises for miner faults."""
        clock = _Clock()
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._exchange(
                    target,
                    SynapseName.CAPABILITIES,
                    None,
                    clock=clock,
                    accept="application/json",
                    timeout_s=timeout_s,
                    connect_timeout_s=connect_timeout_s,
                    read_timeout_s=None,
                )
        except _Failure as failure:
            return CapabilitiesResult(
                ok=False, error=failure.code, message=failure.message, status_code=failure.status_code
            )
        except TimeoutError:
            return CapabilitiesResult(
                ok=False, error=QueryErrorCode.TIMEOUT, message=f"no answer within the {timeout_s:g}s deadline"
            )
        assert isinstance(answer, CapabilitiesResponse)
        return CapabilitiesResult(ok=True, capabilities=answer, status_code=200, total_s=clock.elapsed())

    @staticmethod
    def _failed(failure: _Failure, clock: _Clock) -> QueryResult:
        return QueryResult(
            ok=False,
            error=failure.code,
            message=failure.message,
            status_code=failure.status_code,
            ttft_s=clock.ttft_s,
            total_s=clock.elapsed(),
            chunk_arrivals=tuple(clock.arrivals),
        )

    async def _exchange(
        self,
        target: MinerTarget,
        route: SynapseName,
        request: InferenceRequest | None,
        *,
        clock: _Clock,
        accept: str,
        timeout_s: float,
        connect_timeout_s: float | None,
        read_timeout_s: float | None,
    ) -> BaseModel:
        """Send, then read and parse the answer; raises :class:`_Failure` for every miner fault."""
        body = request.model_dump_json().encode() if request is not None else b"{}"
        connect_s = min(timeout_s, connect_timeout_s or self._connect_timeout_s)
        timeout = httpx.Timeout(timeout_s, connect=connect_s, read=read_timeout_s or timeout_s, pool=timeout_s)
        try:
            http_request = self._http.build_request(
                "POST",
                _url(target, route.value),
                content=body,
                headers={"content-type": "application/json", "accept": accept},
                timeout=timeout,
                extensions={PIN_EXTENSION: target.certificate} if target.certificate is not None else None,
            )
            clock.start = time.monotonic()
            auth = self._signer(self._keypair, target.hotkey_ss58)
            response = await self._http.send(http_request, auth=auth, stream=True)
            try:
                if response.status_code != 200:
                    raise _Failure(
                        QueryErrorCode.HTTP_STATUS, await self._describe_status(response), response.status_code
                    )
                binding = _binding(target, response, body) if self._verify_responses else None
                if request is not None and request.stream:
                    return await self._read_stream(response, request, clock, binding)
                raw = await self._read_capped(response)
                if binding is not None:
                    _check_unary(response, binding, raw)
                model = InferenceResponse if route is SynapseName.INFERENCE else CapabilitiesResponse
                return _parse(model, raw)
            finally:
                await response.aclose()
        except CertificateMismatch as exc:
            raise _Failure(QueryErrorCode.BAD_CERTIFICATE, f"{target.host}:{target.port}: {exc}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise _Failure(QueryErrorCode.CONNECT, f"cannot connect to {target.host}:{target.port}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise _Failure(QueryErrorCode.TIMEOUT, f"timed out: {type(exc).__name__}") from None
        except httpx.DecodingError as exc:
            raise _Failure(QueryErrorCode.MALFORMED, f"undecodable response body: {exc}") from None
        except httpx.HTTPError as exc:
            raise _Failure(QueryErrorCode.TRANSPORT, f"{type(exc).__name__}: {exc}") from None

    async def _read_capped(self, response: httpx.Response, limit: int | None = None) -> bytes:
        """Read the body, stopping with OVERSIZED as soon as it passes the cap."""
        cap = self._max_response_bytes if limit is None else limit
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _Failure(QueryErrorCode.OVERSIZED, f"response declares {declared} bytes, cap is {cap}")
        buffer = bytearray()
        async for piece in response.aiter_bytes():
            buffer += piece
            if len(buffer) > cap:
                raise _Failure(QueryErrorCode.OVERSIZED, f"response exceeds the {cap}-byte cap")
        return bytes(buffer)

    async def _describe_status(self, response: httpx.Response) -> str:
        """A short message for a non-2xx answer, using the gateway's JSON error body when present."""
        try:
            raw = await self._read_capped(response, _MAX_ERROR_BODY_BYTES)
            error = ErrorBody.model_validate_json(raw)
        except (_Failure, ValidationError, httpx.HTTPError):
            return f"HTTP {response.status_code}"
        return f"HTTP {response.status_code} {error.error}: {error.detail}"

    async def _read_stream(
        self, response: httpx.Response, request: InferenceRequest, clock: _Clock, binding: RequestBinding | None
    ) -> BaseModel:
        """Parse an NDJSON stream, timing each chunk as its line completes; verify it when ``binding``."""
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if media_type != NDJSON_MEDIA_TYPE:
            raise _Failure(QueryErrorCode.MALFORMED, f"expected {NDJSON_MEDIA_TYPE}, got {media_type or 'none'}")
        chunks: list[InferenceChunk] = []
        signed = _SignedStream(binding)
        received = 0
        pending = bytearray()
        async for piece in response.aiter_bytes():
            received += len(piece)
            if received > self._max_response_bytes:
                raise _Failure(QueryErrorCode.OVERSIZED, f"stream exceeds the {self._max_response_bytes}-byte cap")
            pending += piece
            while (newline := pending.find(b"\n")) >= 0:
                line = bytes(pending[:newline])
                del pending[: newline + 1]
                signed.take(line, chunks, clock)
        signed.take(bytes(pending), chunks, clock)
        try:
            joined = InferenceResponse.from_chunks(chunks)
        except (ValueError, ValidationError) as exc:
            raise _Failure(QueryErrorCode.MALFORMED, f"invalid stream: {exc}") from None
        signed.check()
        if len(joined.token_ids) > request.max_tokens:
            raise _Failure(
                QueryErrorCode.MALFORMED,
                f"stream returned {len(joined.token_ids)} tokens for max_tokens={request.max_tokens}",
            )
        return joined


@functools.lru_cache(maxsize=4096)
def _url(target: MinerTarget, route: str) -> httpx.URL:
    """The parsed URL of ``route`` on ``target``, parsed once: per request it cost ~10% of the client's CPU."""
    return httpx.URL(target.url(route))


def _default_transport(verify_tls: Any, limits: httpx.Limits, max_connections: int) -> httpx.AsyncBaseTransport:
    """Plain HTTP over the lean per-address pool (O(1) per request); TLS and pinned requests over httpx's."""
    return Http1Transport(PinningTransport(verify=verify_tls, limits=limits), max_connections=max_connections)


def _binding(target: MinerTarget, response: httpx.Response, body: bytes) -> RequestBinding:
    """What the miner's signature must cover: this request as it was signed and sent."""
    caller = response.request.headers.get("X-Bittensor-Hotkey") or response.request.headers.get("Epistula-Signed-By")
    return RequestBinding.of(
        miner_ss58=target.hotkey_ss58,
        caller_ss58=caller or "",
        request_nonce=request_nonce(response.request.headers) or "",
        request_body=body,
    )


def _check_unary(response: httpx.Response, binding: RequestBinding, body: bytes) -> None:
    check = verify_unary(response.headers, binding, status=response.status_code, body=body)
    if not check.ok:
        raise _Failure(QueryErrorCode(check.problem), check.message, response.status_code)


class _SignedStream:
    """Set a stream's signature line apart from its chunks; check it against ``binding`` when given."""

    def __init__(self, binding: RequestBinding | None) -> None:
        self._chain = StreamChain(binding) if binding is not None else None
        self._signature: StreamSignature | None = None

    def take(self, line: bytes, chunks: list[InferenceChunk], clock: _Clock) -> None:
        if not line.strip():
            return
        if self._signature is not None:
            raise _Failure(QueryErrorCode.MALFORMED, "data after the stream's signature line")
        if chunks and chunks[-1].finish_reason is not None and (signature := parse_stream_signature(line)):
            self._signature = signature
            return
        if self._chain is not None:
            self._chain.feed(line)
        _take_line(line, chunks, clock)

    def check(self) -> None:
        if self._chain is None:
            return
        if self._signature is None:
            raise _Failure(QueryErrorCode.UNSIGNED, "the stream ended without a signature line", 200)
        check = verify_stream(self._chain, self._signature)
        if not check.ok:
            raise _Failure(QueryErrorCode.BAD_SIGNATURE, check.message, 200)


def _take_line(line: bytes, chunks: list[InferenceChunk], clock: _Clock) -> None:
    """Record one NDJSON line: a chunk (timed), or the miner's error line (raises STREAM_ERROR)."""
    if not line.strip():
        return
    arrival_s = clock.elapsed()
    if chunks and chunks[-1].finish_reason is not None:
        raise _Failure(QueryErrorCode.MALFORMED, "data after the final chunk")
    try:
        chunk = InferenceChunk.model_validate_json(line)
    except ValidationError as exc:
        try:
            error = ErrorBody.model_validate_json(line)
        except ValidationError:
            raise _Failure(
                QueryErrorCode.MALFORMED, f"invalid stream line: {describe_validation_error(exc, limit=1, root='body')}"
            ) from None
        raise _Failure(QueryErrorCode.STREAM_ERROR, f"{error.error}: {error.detail}") from None
    if clock.ttft_s is None and chunk.token_ids:
        clock.ttft_s = arrival_s
    clock.arrivals.append((arrival_s, len(chunk.token_ids)))
    chunks.append(chunk)


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problem = describe_validation_error(exc, limit=1, root="body")
        raise _Failure(QueryErrorCode.MALFORMED, f"invalid {model.__name__}: {problem}") from None
