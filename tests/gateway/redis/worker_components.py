"""``worker.components`` for the multi-worker tests: an echo service and a fixed validator set.

Imported by each uvicorn worker process (``AXONGATE_WORKER__COMPONENTS=worker_components:build``);
the validator hotkeys come from ``AXONGATE_TEST_VALIDATORS`` (comma-separated).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from gateway.asgi import WorkerComponents, WorkerSettings
from gateway.policy import StaticMetagraphView
from protocol.synapses import CapabilitiesResponse, FinishReason, InferenceChunk, InferenceRequest, Usage


class EchoService:
    """Answers every request with one token per prompt message, then ``length``."""

    async def capabilities(self) -> CapabilitiesResponse:
        return CapabilitiesResponse(
            model="fake/echo-1", weights_sha256="ab" * 32, engine="fake", context_length=2048, version="0.1.0"
        )

    async def infer(self, request: InferenceRequest) -> AsyncIterator[InferenceChunk]:
        yield InferenceChunk(
            token_ids=[100],
            logprobs=[-0.5],
            ranks=[1],
            text="t100 ",
            finish_reason=FinishReason.LENGTH,
            usage=Usage(prompt_tokens=len(request.messages), completion_tokens=1),
        )


def build(settings: WorkerSettings) -> WorkerComponents:
    validators = [hk for hk in os.environ.get("AXONGATE_TEST_VALIDATORS", "").split(",") if hk]
    return WorkerComponents(service=EchoService(), metagraph=StaticMetagraphView.of_validators(validators))
