"""``ThrottledEngine``: caps each request's streaming speed, whatever engine is underneath.

Used to run a deliberately slow but honest miner (demo, tests of speed scoring): tokens are the
engine's own, only their delivery is paced so that a request never runs ahead of
``tokens_per_s``. Pacing sleeps on the event loop, never blocks it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from neurons.engines.base import Engine, EngineInfo, GenerationRequest, ScoredPosition, TokenChunk
from protocol.synapses import ChatMessage

__all__ = ["ThrottledEngine"]


class ThrottledEngine:
    """Wraps ``engine``; ``generate`` yields at most ``tokens_per_s`` tokens per second per request."""

    def __init__(self, engine: Engine, tokens_per_s: float) -> None:
        if not tokens_per_s > 0:
            raise ValueError(f"tokens_per_s must be > 0, got {tokens_per_s}")
        self.inner = engine
        self.tokens_per_s = tokens_per_s

    @property
    def info(self) -> EngineInfo:
        return self.inner.info

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self.inner.encode_chat(messages)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.inner.decode(token_ids)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        started = time.monotonic()
        tokens = 0
        stream = self.inner.generate(request)
        try:
            async for chunk in stream:
                tokens += len(chunk.token_ids)
                delay_s = started + tokens / self.tokens_per_s - time.monotonic()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                yield chunk
        finally:
            await stream.aclose()

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int], k: int = 5) -> list[ScoredPosition]:
        return await self.inner.score(prompt_ids, completion_ids, k)

    async def aclose(self) -> None:
        await self.inner.aclose()
