"""Malformed, oversized and failing miners over real HTTP: each scores 0, and the validator carries on.

The fake miner is a tiny FastAPI app on 127.0.0.1 that ignores signatures and answers garbage; the
validator side is the real client and the real verification.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from adversarial_kit import CONFIG, challenges, query_and_verify
from fastapi import FastAPI
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway import GatewayServer
from neurons.scoring import Measurement, VerdictReason, compute_rewards
from protocol.client import NDJSON_MEDIA_TYPE, MinerClient, MinerTarget, QueryErrorCode

_GOOD_LINE = {"token_ids": [5], "logprobs": [-0.5], "ranks": [1], "text": "x"}


def _ndjson(lines: list[bytes]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for line in lines:
            yield line

    return StreamingResponse(body(), media_type=NDJSON_MEDIA_TYPE)


def _garbage_app() -> FastAPI:
    app = FastAPI()

    @app.post("/Inference")
    async def inference(mode: str = "not_json") -> Response:
        match mode:
            case "not_json":
                return _ndjson([b"this is not json\n"])
            case "bad_schema":
                return _ndjson([json.dumps({"token_ids": ["x"], "logprobs": [1.5], "ranks": [0]}).encode() + b"\n"])
            case "unequal_lengths":
                return _ndjson(
                    [json.dumps({"token_ids": [1, 2, 3], "logprobs": [-1.0], "ranks": [1]}).encode() + b"\n"]
                )
            case "never_finishes":
                return _ndjson([json.dumps(_GOOD_LINE).encode() + b"\n"] * 5)
            case "too_many_tokens":
                final = _GOOD_LINE | {
                    "finish_reason": "length",
                    "usage": {"prompt_tokens": 1, "completion_tokens": 999},
                }
                return _ndjson([json.dumps(_GOOD_LINE).encode() + b"\n"] * 998 + [json.dumps(final).encode() + b"\n"])
            case "oversized":
                return _ndjson([json.dumps(_GOOD_LINE | {"text": "y" * 60_000}).encode() + b"\n"] * 40)
            case "wrong_media_type":
                return JSONResponse({"hello": "world"})
            case "server_error":
                return JSONResponse({"error": "boom", "detail": "kaput"}, status_code=500)
        return JSONResponse({"error": "unknown_mode", "detail": mode}, status_code=400)

    return app


@pytest.fixture
async def garbage_miner(miner_keypair) -> AsyncIterator[MinerTarget]:
    server = GatewayServer(_garbage_app(), "127.0.0.1", 0, grace_s=0.5)
    await server.start()
    yield MinerTarget("127.0.0.1", server.port, miner_keypair.ss58_address)
    await server.stop()


class _ModeTarget(MinerTarget):
    """Routes the query to one garbage mode (the fake miner reads it from the query string)."""

    def __init__(self, base: MinerTarget, mode: str) -> None:
        super().__init__(base.host, base.port, base.hotkey_ss58)
        object.__setattr__(self, "_mode", mode)

    def url(self, route: str) -> str:
        return super().url(route) + f"?mode={self._mode}"


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("not_json", QueryErrorCode.MALFORMED),
        ("bad_schema", QueryErrorCode.MALFORMED),
        ("unequal_lengths", QueryErrorCode.MALFORMED),
        ("never_finishes", QueryErrorCode.MALFORMED),
        ("too_many_tokens", QueryErrorCode.MALFORMED),
        ("oversized", QueryErrorCode.OVERSIZED),
        ("wrong_media_type", QueryErrorCode.MALFORMED),
        ("server_error", QueryErrorCode.HTTP_STATUS),
    ],
)
async def test_garbage_answers_score_zero_and_the_validator_carries_on(
    garbage_miner: MinerTarget,
    validator_keypair,
    serve,
    miner_engine,
    validator_engine,
    mode: str,
    code: QueryErrorCode,
) -> None:
    request = challenges(seed=21, n=1)[0]
    async with MinerClient(validator_keypair, max_response_bytes=1024 * 1024) as client:
        result, verdict = await query_and_verify(client, _ModeTarget(garbage_miner, mode), validator_engine, request)
        assert not result.ok and result.error is code, result.message
        assert verdict.reason is VerdictReason.NO_RESPONSE
        honest_target = await serve(miner_engine)
        honest, honest_verdict = await query_and_verify(client, honest_target, validator_engine, request)
    assert honest_verdict.verified
    rewards = compute_rewards(
        [
            Measurement(1, verdict.verified, result.tokens_per_s, result.ttft_s),
            Measurement(2, honest_verdict.verified, honest.tokens_per_s, honest.ttft_s),
        ],
        CONFIG,
    )
    assert rewards[1] == 0.0 and rewards[2] == pytest.approx(1.0)
