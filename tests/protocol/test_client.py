"""MinerClient against misbehaving servers: every miner fault is a typed result, never an exception."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from protocol.client import MinerClient, MinerTarget, QueryError, QueryErrorCode
from protocol.synapses import ChatMessage, InferenceChunk, InferenceRequest, Usage

REQUEST = InferenceRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=4)
STREAM_REQUEST = REQUEST.model_copy(update={"stream": True})


def _chunk(token: int, *, last: bool = False) -> bytes:
    chunk = InferenceChunk(
        token_ids=[token],
        logprobs=[-0.1],
        ranks=[1],
        text=f"t{token}",
        finish_reason="stop" if last else None,
        usage=Usage(prompt_tokens=2, completion_tokens=token) if last else None,
    )
    return chunk.model_dump_json().encode() + b"\n"


def _app(handler: Any, route: str = "/Inference") -> Starlette:
    return Starlette(routes=[Route(route, handler, methods=["POST"])])


def _ndjson(parts: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(parts, media_type="application/x-ndjson")


async def test_connect_refused_is_connect(client: MinerClient, miner_hotkey: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await client.infer(MinerTarget("127.0.0.1", port, miner_hotkey), REQUEST, timeout_s=2)
    assert result.error is QueryErrorCode.CONNECT and not result.ok
    assert result.response is None and result.status_code is None
    with pytest.raises(QueryError) as caught:
        result.raise_for_failure()
    assert caught.value.code is QueryErrorCode.CONNECT


async def test_slow_unary_answer_is_timeout(serve: Any, client: MinerClient) -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(10)
        return JSONResponse({})

    target = await serve(_app(slow))
    result = await client.infer(target, REQUEST, timeout_s=0.3)
    assert result.error is QueryErrorCode.TIMEOUT


async def test_total_deadline_covers_the_whole_stream(serve: Any, client: MinerClient) -> None:
    async def trickle(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for token in range(1, 1000):
                yield _chunk(token)
                await asyncio.sleep(0.05)

        return _ndjson(parts())

    target = await serve(_app(trickle))
    result = await client.infer(target, STREAM_REQUEST, timeout_s=1.0, read_timeout_s=0.9)
    assert result.error is QueryErrorCode.TIMEOUT
    assert result.chunk_arrivals and result.ttft_s is not None  # partial progress is kept


async def test_streamed_chunks_are_timed_as_they_arrive(serve: Any, client: MinerClient) -> None:
    async def steady(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for token in (1, 2, 3):
                yield _chunk(token, last=token == 3)
                await asyncio.sleep(0.05)

        return _ndjson(parts())

    target = await serve(_app(steady))
    result = await client.infer(target, STREAM_REQUEST, timeout_s=5)
    assert result.ok, result.message
    assert result.raise_for_failure().token_ids == [1, 2, 3]
    arrivals = [at for at, _ in result.chunk_arrivals]
    assert len(arrivals) == 3 and arrivals == sorted(arrivals)
    assert result.ttft_s == arrivals[0] and result.total_s is not None and result.total_s >= arrivals[-1]


def _fixed(body: bytes, *, status: int = 200, media_type: str = "application/json") -> Any:
    async def handler(request: Request) -> Response:
        return Response(body, status_code=status, media_type=media_type)

    return handler


def _streamed(lines: list[bytes]) -> Any:
    async def handler(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for line in lines:
                yield line

        return _ndjson(parts())

    return handler


@pytest.mark.parametrize(
    ("handler", "request_", "code", "fragment"),
    [
        (_fixed(b"<html>oops</html>"), REQUEST, QueryErrorCode.MALFORMED, "invalid InferenceResponse"),
        (
            _fixed(
                b'{"token_ids":[1],"logprobs":[0.5],"ranks":[1],"text":"a","finish_reason":"stop",'
                b'"usage":{"prompt_tokens":1,"completion_tokens":1}}'
            ),
            REQUEST,
            QueryErrorCode.MALFORMED,
            "logprobs.0",
        ),
        (_streamed([_chunk(1), b"garbage\n"]), STREAM_REQUEST, QueryErrorCode.MALFORMED, "invalid stream line"),
        (_streamed([_chunk(1), _chunk(2)]), STREAM_REQUEST, QueryErrorCode.MALFORMED, "without a final chunk"),
        (
            _streamed([_chunk(t) for t in range(1, 5)] + [_chunk(5, last=True)]),
            STREAM_REQUEST,
            QueryErrorCode.MALFORMED,
            "max_tokens=4",
        ),
        (_streamed([_chunk(1, last=True), _chunk(2)]), STREAM_REQUEST, QueryErrorCode.MALFORMED, "after the final"),
        (_fixed(_chunk(1, last=True)), STREAM_REQUEST, QueryErrorCode.MALFORMED, "expected application/x-ndjson"),
        (
            _streamed([_chunk(1), b'{"error":"timeout","detail":"took too long"}\n']),
            STREAM_REQUEST,
            QueryErrorCode.STREAM_ERROR,
            "timeout: took too long",
        ),
        (
            _fixed(b'{"error":"overloaded","detail":"queue full"}', status=503),
            REQUEST,
            QueryErrorCode.HTTP_STATUS,
            "HTTP 503 overloaded: queue full",
        ),
        (_fixed(b"bad gateway", status=502, media_type="text/plain"), REQUEST, QueryErrorCode.HTTP_STATUS, "HTTP 502"),
        (_fixed(b"x" * (65 * 1024)), REQUEST, QueryErrorCode.OVERSIZED, "65"),
    ],
    ids=[
        "not-json",
        "schema-violation",
        "garbage-line",
        "no-final-chunk",
        "too-many-tokens",
        "data-after-final",
        "unary-to-stream",
        "stream-error-line",
        "error-status",
        "plain-error-status",
        "oversized-declared",
    ],
)
async def test_faulty_answers_are_typed(
    serve: Any, client: MinerClient, handler: Any, request_: InferenceRequest, code: QueryErrorCode, fragment: str
) -> None:
    target = await serve(_app(handler))
    result = await client.infer(target, request_, timeout_s=5)
    assert not result.ok and result.response is None
    assert result.error is code, result.message
    assert fragment in result.message


async def test_endless_stream_stops_at_the_size_cap(serve: Any, client: MinerClient) -> None:
    sent = 0

    async def endless(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            nonlocal sent
            while True:
                sent += 1
                yield b'{"pad": "' + b"x" * 4096 + b'"'  # no newline: one ever-growing line
                await asyncio.sleep(0)

        return _ndjson(parts())

    target = await serve(_app(endless))
    result = await client.infer(target, STREAM_REQUEST, timeout_s=10)
    assert result.error is QueryErrorCode.OVERSIZED
    assert "64" in result.message or "65536" in result.message


async def test_capabilities_failure_is_typed(serve: Any, client: MinerClient) -> None:
    target = await serve(_app(_fixed(b'{"model": 1}'), route="/Capabilities"))
    result = await client.capabilities(target, timeout_s=5)
    assert result.error is QueryErrorCode.MALFORMED and result.capabilities is None
    with pytest.raises(QueryError):
        result.raise_for_failure()


async def test_requests_carry_btauth_headers_for_the_target(
    serve: Any, client: MinerClient, validator_keypair: Any, miner_hotkey: str
) -> None:
    seen: dict[str, str] = {}

    async def capture(request: Request) -> Response:
        seen.update(request.headers)
        return Response(b"{}", status_code=418)

    target = await serve(_app(capture))
    await client.infer(target, REQUEST, timeout_s=5)
    assert seen["x-bittensor-hotkey"] == validator_keypair.ss58_address
    assert seen["x-bittensor-receiver"] == miner_hotkey
    assert seen["content-type"] == "application/json"


def test_target_url_brackets_ipv6() -> None:
    assert MinerTarget("::1", 8091, "hk").url("Inference") == "http://[::1]:8091/Inference"
    assert MinerTarget("10.0.0.2", 443, "hk", "https").url("Capabilities") == "https://10.0.0.2:443/Capabilities"


def test_client_rejects_a_non_positive_size_cap(validator_keypair: Any) -> None:
    with pytest.raises(ValueError, match="max_response_bytes"):
        MinerClient(validator_keypair, max_response_bytes=0)
