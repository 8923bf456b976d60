"""Turn a :class:`Generation` into an HTTP answer: unary JSON, or an NDJSON/SSE stream.

Streams send one line (NDJSON) or event (SSE) per engine step as soon as it exists. An error
after the stream started cannot change the status, so it becomes a final ``ErrorBody`` line
(NDJSON) or ``event: error`` (SSE). The first chunk is awaited before the response starts, so
errors that happen before any output still get a proper HTTP status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from loguru import logger
from starlette.responses import Response, StreamingResponse

from gateway._errors import GatewayError
from gateway._generation import END, KEEPALIVE, Generation
from gateway.service import ServiceError
from protocol.synapses import ErrorBody, InferenceChunk, InferenceResponse, ServerTimings

__all__ = ["NDJSON_MEDIA_TYPE", "SSE_MEDIA_TYPE", "stream_response", "unary_answer", "unary_response"]

NDJSON_MEDIA_TYPE = "application/x-ndjson"
SSE_MEDIA_TYPE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class _Framing:
    media_type: str
    prefix: bytes
    error_prefix: bytes
    suffix: bytes
    keepalive: bytes | None

    def chunk(self, chunk: InferenceChunk) -> bytes:
        return self.prefix + chunk.model_dump_json().encode() + self.suffix

    def error(self, code: str, detail: str) -> bytes:
        return self.error_prefix + ErrorBody(error=code, detail=detail).model_dump_json().encode() + self.suffix


_NDJSON = _Framing(NDJSON_MEDIA_TYPE, b"", b"", b"\n", None)
_SSE = _Framing(SSE_MEDIA_TYPE, b"data: ", b"event: error\ndata: ", b"\n\n", b": keepalive\n\n")


async def _next_or_status(generation: Generation, *, keepalive_s: float | None, timeout_s: float) -> object:
    """``generation.next`` with failures mapped to :class:`GatewayError` (used before any output)."""
    try:
        return await generation.next(keepalive_s=keepalive_s)
    except TimeoutError:
        raise GatewayError(504, "timeout", f"generation did not finish within {timeout_s:g}s") from None
    except ServiceError as exc:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
        raise GatewayError(exc.status, exc.code, exc.message, headers=headers) from None
    except Exception as exc:
        logger.opt(exception=exc).error("inference service failed")
        raise GatewayError(500, "internal_error", "the miner's inference service failed") from None


async def unary_response(generation: Generation, *, model: str, timeout_s: float) -> Response:
    """Collect every chunk and answer one ``InferenceResponse``; always closes the generation."""
    answer = await unary_answer(generation, model=model, timeout_s=timeout_s)
    return Response(answer.model_dump_json(), media_type="application/json")


async def unary_answer(generation: Generation, *, model: str, timeout_s: float) -> InferenceResponse:
    """The ``InferenceResponse`` :func:`unary_response` sends (``GatewayError`` on failure)."""
    chunks: list[InferenceChunk] = []
    try:
        while (item := await _next_or_status(generation, keepalive_s=None, timeout_s=timeout_s)) is not END:
            assert isinstance(item, InferenceChunk)
            chunks.append(item)
            if item.finish_reason is not None:
                break
    finally:
        await generation.aclose()
    timings = ServerTimings(ttft_s=generation.ttft_s, total_s=generation.elapsed_s())
    try:
        answer = InferenceResponse.from_chunks(chunks, model=model, timings=timings)
    except ValueError as exc:
        logger.error("inference service produced an invalid completion: {}", exc)
        raise GatewayError(500, "internal_error", "the miner's inference service ended without finishing") from None
    return answer


async def stream_response(
    generation: Generation, *, sse: bool, keepalive_s: float, timeout_s: float, on_close: Callable[[], None]
) -> Response:
    """Start streaming once the first chunk exists; ``on_close`` runs when the stream ends (or fails to start)."""
    framing = _SSE if sse else _NDJSON
    keepalive = keepalive_s if framing.keepalive is not None else None
    try:
        first = await _next_or_status(generation, keepalive_s=None, timeout_s=timeout_s)
        if first is END:
            logger.error("inference service ended a stream without any chunk")
            raise GatewayError(500, "internal_error", "the miner's inference service produced no output")
    except BaseException:
        await generation.aclose()
        on_close()
        raise
    assert isinstance(first, InferenceChunk)
    body = _stream_body(first, generation, framing, keepalive_s=keepalive, timeout_s=timeout_s, on_close=on_close)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type=framing.media_type, headers=headers)


async def _stream_body(
    first: InferenceChunk,
    generation: Generation,
    framing: _Framing,
    *,
    keepalive_s: float | None,
    timeout_s: float,
    on_close: Callable[[], None],
) -> AsyncIterator[bytes]:
    try:
        yield framing.chunk(first)
        if first.finish_reason is not None:
            return
        while True:
            try:
                item = await generation.next(keepalive_s=keepalive_s)
            except TimeoutError:
                yield framing.error("timeout", f"generation did not finish within {timeout_s:g}s")
                return
            except ServiceError as exc:
                yield framing.error(exc.code, exc.message)
                return
            except Exception as exc:
                logger.opt(exception=exc).error("inference service failed mid-stream")
                yield framing.error("internal_error", "the miner's inference service failed")
                return
            if item is KEEPALIVE:
                assert framing.keepalive is not None
                yield framing.keepalive
                continue
            if item is END:
                logger.error("inference service ended a stream without a final chunk")
                yield framing.error("internal_error", "the miner's inference service ended without finishing")
                return
            assert isinstance(item, InferenceChunk)
            yield framing.chunk(item)
            if item.finish_reason is not None:
                return
    finally:
        await generation.aclose()
        on_close()
