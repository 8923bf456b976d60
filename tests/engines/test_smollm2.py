"""The HF engine on the real SmolLM2 model: numerics that verification relies on, and responsiveness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from engine_support import EngineUnderTest

from neurons.engines.base import GenerationRequest
from protocol.synapses import ChatMessage, FinishReason

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


def chat(eut: EngineUnderTest, text: str) -> tuple[int, ...]:
    return tuple(eut.engine.encode_chat([ChatMessage(role="user", content=text)]))


async def test_answers_coherently_and_stops_at_eos(smollm2_engine: EngineUnderTest) -> None:
    eut = smollm2_engine
    chunks = [c async for c in eut.engine.generate(GenerationRequest(chat(eut, "What is the capital of France?"), 40))]
    ids = [t for c in chunks for t in c.token_ids]
    text = "".join(c.text for c in chunks)
    assert "Paris" in text
    assert chunks[-1].finish_reason == FinishReason.STOP and ids[-1] in eut.engine.info.eos_token_ids
    assert text == eut.engine.decode(ids)


async def test_generate_and_score_agree_within_1e4_nats(smollm2_engine: EngineUnderTest) -> None:
    eut = smollm2_engine
    ids = chat(eut, "Write two sentences about the sea.")
    for request in (
        GenerationRequest(ids, 24, temperature=0.0),
        GenerationRequest(ids, 24, temperature=1.0, top_p=0.9, seed=1234),
    ):
        chunks = [c async for c in eut.engine.generate(request)]
        tokens = [t for c in chunks for t in c.token_ids]
        scored = await eut.engine.score(ids, tokens, k=5)
        logprobs = [lp for c in chunks for lp in c.logprobs]
        ranks = [r for c in chunks for r in c.ranks]
        diffs = [abs(a - s.logprob) for a, s in zip(logprobs, scored, strict=True)]
        assert max(diffs) < 1e-4, max(diffs)
        assert ranks == [s.rank for s in scored]


async def test_event_loop_keeps_running_during_long_model_work(smollm2_engine: EngineUnderTest) -> None:
    """A ~700-token prefill takes about a second on CPU; a heartbeat must keep ticking meanwhile."""
    eut = smollm2_engine
    long_prompt = chat(eut, "Summarise: " + "The miner streams tokens to the validator. " * 75)
    assert len(long_prompt) > 600

    async def ticks_during(work: Awaitable[object]) -> int:
        count = 0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal count
            while not done.is_set():
                await asyncio.sleep(0.01)
                count += 1

        beat = asyncio.create_task(heartbeat())
        try:
            await work
        finally:
            done.set()
            await beat
        return count

    async def generate() -> None:
        async for _ in eut.engine.generate(GenerationRequest(long_prompt, 2)):
            pass

    assert await ticks_during(generate()) >= 5
    assert await ticks_during(eut.engine.score(long_prompt[:-8], long_prompt[-8:])) >= 5
