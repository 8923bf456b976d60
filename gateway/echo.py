"""An instant ``InferenceService`` for benchmarks and smoke tests: no model, one chunk per request.

It isolates the gateway's own cost (auth, policy, parsing, framing) from any engine's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from protocol.synapses import CapabilitiesResponse, FinishReason, InferenceChunk, InferenceRequest, Usage

__all__ = ["EchoService"]


class EchoService:
    """Answers each request at once with one token and the first 16 characters of the last message."""

    async def capabilities(self) -> CapabilitiesResponse:
        return CapabilitiesResponse(
            model="echo", weights_sha256="0" * 64, engine="echo", context_length=2048, version="bench"
        )

    async def infer(self, request: InferenceRequest) -> AsyncIterator[InferenceChunk]:
        yield InferenceChunk(
            token_ids=[7],
            logprobs=[0.0],
            ranks=[1],
            text=request.messages[-1].content[:16],
            finish_reason=FinishReason.LENGTH,
            usage=Usage(prompt_tokens=1, completion_tokens=1),
        )
