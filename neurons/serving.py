"""Adapts an :class:`~neurons.engines.base.Engine` to the gateway's ``InferenceService`` seam.

The gateway speaks wire schemas (``InferenceRequest`` in, ``InferenceChunk`` out); the engine
speaks token ids. This module tokenises with the engine's chat template, maps sampling
parameters, converts engine errors into the gateway's service errors, and adds the usage
figures to the final chunk.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from gateway.policy import PeerInfo
from gateway.service import BadRequest, Unavailable
from neurons.chain.records import MetagraphSnapshot
from neurons.engines.base import Engine, EngineDeadError, EngineError, GenerationRequest, InvalidEngineRequest
from protocol.synapses import CapabilitiesResponse, InferenceChunk, InferenceRequest, Usage

__all__ = ["ChainMetagraphView", "EngineService"]


class EngineService:
    """``InferenceService`` backed by an engine; ``version`` is reported by ``Capabilities``."""

    def __init__(self, engine: Engine, *, version: str) -> None:
        self._engine = engine
        self._version = version

    async def capabilities(self) -> CapabilitiesResponse:
        info = self._engine.info
        return CapabilitiesResponse(
            model=info.model,
            weights_sha256=info.weights_sha256,
            engine=info.engine,
            context_length=info.context_length,
            version=self._version,
        )

    async def infer(self, request: InferenceRequest) -> AsyncIterator[InferenceChunk]:
        """Stream the completion; raises ``BadRequest`` (400) or ``Unavailable`` (503)."""
        prompt_ids = self._engine.encode_chat(request.messages)
        generation = GenerationRequest(
            prompt_ids=tuple(prompt_ids),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            seed=request.seed,
            request_id=uuid.uuid4().hex,
        )
        completion_tokens = 0
        try:
            async for chunk in self._engine.generate(generation):
                completion_tokens += len(chunk.token_ids)
                usage = None
                if chunk.finish_reason is not None:
                    usage = Usage(prompt_tokens=len(prompt_ids), completion_tokens=completion_tokens)
                yield InferenceChunk(
                    token_ids=list(chunk.token_ids),
                    logprobs=list(chunk.logprobs),
                    ranks=list(chunk.ranks),
                    text=chunk.text,
                    finish_reason=chunk.finish_reason,
                    usage=usage,
                )
        except InvalidEngineRequest as exc:
            raise BadRequest(str(exc)) from exc
        except EngineDeadError as exc:
            raise Unavailable(f"engine is down: {exc}") from exc
        except EngineError as exc:
            raise Unavailable(f"engine failed: {exc}") from exc


class ChainMetagraphView:
    """The gateway's ``MetagraphView`` over the latest chain snapshot; ``update`` swaps it atomically."""

    def __init__(self, snapshot: MetagraphSnapshot) -> None:
        self._peers: dict[str, PeerInfo] = {}
        self.update(snapshot)

    def update(self, snapshot: MetagraphSnapshot) -> None:
        self._peers = {
            n.hotkey: PeerInfo(uid=n.uid, stake=n.stake, validator_permit=n.validator_permit) for n in snapshot.neurons
        }

    def lookup(self, hotkey_ss58: str) -> PeerInfo | None:
        return self._peers.get(hotkey_ss58)
