"""Verification against an engine, and answering a challenge in-process (calibration, benchmarks, tests).

:func:`verify_answer` is what the validator loop calls for each miner's result: it encodes the
challenge with the validator's own engine, runs the model-free checks, teacher-forces the tokens
(``Engine.score``, skipped when the cheap checks already failed) and returns the :class:`Verdict`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import anyio

from neurons.engines.base import Engine, GenerationRequest, TokenChunk
from neurons.scoring.config import ScoringConfig
from neurons.scoring.verify import Answer, Verdict, VerdictReason, check_scored, precheck, required_top_k
from protocol.synapses import InferenceChunk, InferenceRequest, InferenceResponse, Usage

__all__ = ["LocalAnswer", "answer_locally", "verify_answer"]


async def verify_answer(engine: Engine, request: InferenceRequest, result: Answer, config: ScoringConfig) -> Verdict:
    """Verify one miner's ``result`` for ``request`` with the validator's ``engine``.

    Raises what ``Engine.score`` raises (``EngineError``; ``InvalidEngineRequest`` only if the
    validator's own context is too short for its own challenge).
    """
    prompt_ids = await anyio.to_thread.run_sync(engine.encode_chat, request.messages)
    info = engine.info
    failed = await anyio.to_thread.run_sync(
        lambda: precheck(
            request,
            prompt_ids,
            result,
            eos_ids=info.eos_token_ids,
            vocab_size=info.vocab_size,
            decode=engine.decode,
            config=config,
        )
    )
    response = result.response
    if failed is not None or response is None:
        return failed or Verdict(False, VerdictReason.NO_RESPONSE, "no response")
    positions = await engine.score(prompt_ids, response.token_ids, required_top_k(request, config))
    return check_scored(
        request, response, positions, eos_ids=info.eos_token_ids, vocab_size=info.vocab_size, config=config
    )


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """An answer produced in-process, shaped like the client's ``QueryResult`` where verification reads it."""

    response: InferenceResponse
    prompt_ids: tuple[int, ...]
    chunk_arrivals: tuple[tuple[float, int], ...]
    ttft_s: float | None
    total_s: float


async def answer_locally(engine: Engine, request: InferenceRequest, *, request_id: str = "") -> LocalAnswer:
    """Run ``request`` through ``engine.generate`` as a miner would, timing each chunk's arrival."""
    prompt_ids = tuple(await anyio.to_thread.run_sync(engine.encode_chat, request.messages))
    generation = GenerationRequest(
        prompt_ids=prompt_ids,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        seed=request.seed,
        request_id=request_id,
    )
    start = time.monotonic()
    chunks: list[TokenChunk] = []
    arrivals: list[tuple[float, int]] = []
    async with contextlib.aclosing(engine.generate(generation)) as stream:
        async for chunk in stream:
            arrivals.append((time.monotonic() - start, len(chunk.token_ids)))
            chunks.append(chunk)
    total_s = time.monotonic() - start
    wire = [
        InferenceChunk(
            token_ids=list(c.token_ids),
            logprobs=list(c.logprobs),
            ranks=list(c.ranks),
            text=c.text,
            finish_reason=c.finish_reason,
            usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=sum(len(x.token_ids) for x in chunks))
            if c.finish_reason is not None
            else None,
        )
        for c in chunks
    ]
    ttft_s = next((t for t, n in arrivals if n > 0), None)
    return LocalAnswer(InferenceResponse.from_chunks(wire), prompt_ids, tuple(arrivals), ttft_s, total_s)
