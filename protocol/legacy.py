"""axongate synapses for validators still on bittensor <= 10 (the ``Dendrite``/``Axon`` stack).

A standalone file: it imports only ``bittensor`` (10.x) and ``pydantic``, never anything of
axongate's, so a v10 validator copies it into its own code base and queries axongate miners with
the stock ``bt.Dendrite``::

    from legacy import Inference, InferenceStream, ChatMessage

    dendrite = bt.Dendrite(wallet=wallet)
    request = Inference(messages=[ChatMessage(role="user", content="hi")], max_tokens=32, seed=7)
    result = await dendrite.forward(axon, request, timeout=12, deserialize=False)
    if result.is_success:
        print(result.text, result.token_ids, result.logprobs)

    stream = await dendrite.forward(axon, InferenceStream(messages=[...]), streaming=True)
    async for item in stream:   # InferenceStreamChunk ..., then the filled InferenceStream
        ...

Differences from a stock synapse, each deliberate:

- ``required_hash_fields`` lists every request input, so the dendrite's signature covers the
  prompt and sampling parameters (the stock default covers no body field at all).
- Request inputs are ``frozen``: the dendrite's response merge cannot overwrite them, so what a
  validator scores is always what it asked for, whatever a miner sends back.
- ``InferenceStream`` reads the gateway's stream as newline-delimited JSON chunks (one
  ``InferenceStreamChunk`` per engine step), so chunk boundaries survive any TCP re-framing.

Routes: ``POST /Inference`` (unary), ``POST /InferenceStream`` (streaming) and
``POST /Capabilities``; the route is the class name, as in every v10 synapse.
"""

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import bittensor as bt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = [
    "Capabilities",
    "ChatMessage",
    "Inference",
    "InferenceStream",
    "InferenceStreamChunk",
    "ServerTimings",
    "Usage",
]


class ChatMessage(BaseModel):
    """One chat turn; ``role`` is ``system``, ``user`` or ``assistant`` (the miner enforces it)."""

    role: str = "user"
    content: str = ""


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ServerTimings(BaseModel):
    """Timings the miner measured; informative only (a validator measures its own)."""

    ttft_s: float | None = None
    total_s: float = 0.0


_INPUTS = ("messages", "max_tokens", "temperature", "top_p", "top_k", "seed")


class _InferenceFields(BaseModel):
    """Request inputs (frozen, signed) and completion outputs shared by both inference synapses.

    Inputs follow vLLM's sampling conventions: ``temperature == 0`` is greedy, ``top_k == 0``
    and ``top_p == 1`` switch those filters off, and ``seed`` makes sampling reproducible.
    """

    messages: list[ChatMessage] = Field(default_factory=list, frozen=True)
    max_tokens: int = Field(default=128, frozen=True)
    temperature: float = Field(default=0.0, frozen=True)
    top_p: float = Field(default=1.0, frozen=True)
    top_k: int = Field(default=0, frozen=True)
    seed: int | None = Field(default=None, frozen=True)

    text: str = ""
    token_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list, description="Raw logprob of each sampled token.")
    ranks: list[int] = Field(default_factory=list, description="Rank of each sampled token; 1 = argmax.")
    finish_reason: str | None = Field(default=None, description="'stop' or 'length'; None if unfinished.")
    usage: Usage | None = None
    model: str | None = None
    timings: ServerTimings | None = None


class Inference(_InferenceFields, bt.Synapse):
    """Unary chat completion: the response carries the whole completion."""

    required_hash_fields: ClassVar[tuple[str, ...]] = _INPUTS


class InferenceStreamChunk(BaseModel):
    """One streamed engine step: the tokens sampled in that step and the text they add.

    The last chunk carries ``finish_reason`` and ``usage``. A line with ``error`` (a code) and
    ``detail`` ends a stream that failed after it started (its status was already sent as 200).
    """

    model_config = ConfigDict(extra="ignore")

    token_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    ranks: list[int] = Field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    error: str | None = None
    detail: str | None = None


class InferenceStream(_InferenceFields, bt.StreamingSynapse):
    """Streaming chat completion: yields ``InferenceStreamChunk``s, then the filled synapse.

    ``stream_error`` is set when the miner reported a failure mid-stream; a stream that ended
    without a final chunk leaves ``finish_reason`` as None. Check both before scoring.
    """

    required_hash_fields: ClassVar[tuple[str, ...]] = _INPUTS

    stream_error: str | None = None

    _chunks: list[InferenceStreamChunk] = PrivateAttr(default_factory=list)
    _error_body: dict[str, Any] | None = PrivateAttr(default=None)

    async def process_streaming_response(self, response: Any) -> AsyncIterator[InferenceStreamChunk]:
        """Parse the newline-delimited JSON chunks of ``response`` (an aiohttp response)."""
        if response.status != 200:
            self._error_body = await _error_body(response)
            return
        buffer = b""
        async for data in response.content.iter_any():
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    chunk = InferenceStreamChunk.model_validate_json(line)
                    self._chunks.append(chunk)
                    yield chunk
        if buffer.strip():
            chunk = InferenceStreamChunk.model_validate_json(buffer)
            self._chunks.append(chunk)
            yield chunk

    def extract_response_json(self, response: Any) -> dict[str, Any]:
        """The body-equivalent the dendrite merges: inputs echoed, outputs joined from the chunks.

        Status, process time and terminal details come from the response headers, which the
        dendrite merges on top of this.
        """
        if self._error_body is not None:
            return self._error_body
        chunks = self._chunks
        last = chunks[-1] if chunks else None
        errors = [f"{c.error}: {c.detail}" if c.detail else c.error for c in chunks if c.error]
        return {
            **self.model_dump(include=set(_INPUTS) | {"timeout", "dendrite", "axon"}),
            "text": "".join(c.text for c in chunks),
            "token_ids": [t for c in chunks for t in c.token_ids],
            "logprobs": [x for c in chunks for x in c.logprobs],
            "ranks": [r for c in chunks for r in c.ranks],
            "finish_reason": last.finish_reason if last is not None and not errors else None,
            "usage": last.usage.model_dump() if last is not None and last.usage is not None else None,
            "stream_error": errors[-1] if errors else None,
        }

    def deserialize(self) -> "InferenceStream":
        return self


class Capabilities(bt.Synapse):
    """What the miner serves: model, sha256 over its weight files, engine and context length."""

    model: str | None = None
    weights_sha256: str | None = None
    engine: str | None = None
    context_length: int | None = None
    version: str | None = None


async def _error_body(response: Any) -> dict[str, Any]:
    """The ``{"message": ...}`` of an error response, whatever its content type."""
    raw = await response.read()
    try:
        body = json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")[:512]}
    return body if isinstance(body, dict) else {"message": str(body)}
