"""Typed wire schemas shared by miners, validators and clients.

Every model here is a pydantic v2 model with strict bounds, so a request that passes validation
is safe to hand to an engine and a response that passes validation is safe to score. The limits
are module constants so that servers, clients and docs quote the same numbers.

Synapses (the routes a miner serves):

- ``Inference``: chat ``messages`` plus sampling parameters in, completion token ids, text and
  per-token logprob/rank out (unary ``InferenceResponse`` or a stream of ``InferenceChunk``).
- ``Capabilities``: what the miner serves (model, weights digest, engine, context length).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_CONTENT_CHARS",
    "MAX_MESSAGES",
    "MAX_NEW_TOKENS",
    "MAX_SEED",
    "CapabilitiesRequest",
    "CapabilitiesResponse",
    "ChatMessage",
    "ErrorBody",
    "FinishReason",
    "InferenceChunk",
    "InferenceRequest",
    "InferenceResponse",
    "ServerTimings",
    "SynapseName",
    "Usage",
]

MAX_MESSAGES = 64
"""Most chat turns one request may carry."""
MAX_CONTENT_CHARS = 32_768
"""Most characters in one message's content."""
MAX_NEW_TOKENS = 4096
"""Most completion tokens a request may ask for."""
MAX_SEED = 2**63 - 1
"""Seeds are non-negative signed 64-bit integers (what torch and vLLM accept)."""
MAX_TOKEN_ID = 2**31 - 1
"""Token ids are non-negative 32-bit integers."""
MAX_RANK = 2**31 - 1

TokenId = Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]
Logprob = Annotated[float, Field(le=0.0, ge=-1e4, allow_inf_nan=False)]
Rank = Annotated[int, Field(ge=1, le=MAX_RANK)]


class SynapseName(StrEnum):
    """Route names a miner serves: ``POST /{name}``."""

    INFERENCE = "Inference"
    CAPABILITIES = "Capabilities"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatMessage(_Strict):
    """One chat turn."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CONTENT_CHARS)


class InferenceRequest(_Strict):
    """A chat completion request.

    Sampling follows vLLM's conventions: ``temperature == 0`` is greedy, ``top_k == 0`` and
    ``top_p == 1`` switch those filters off, and a ``seed`` makes sampling reproducible within
    one engine.
    """

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int = Field(default=128, ge=1, le=MAX_NEW_TOKENS, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    top_k: int = Field(default=0, ge=0, le=1000, description="0 disables top-k filtering.")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stream: bool = Field(default=False, description="Stream one chunk per engine step.")


class FinishReason(StrEnum):
    """Why generation ended: an end-of-sequence token, or ``max_tokens`` reached."""

    STOP = "stop"
    LENGTH = "length"


class Usage(_Strict):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class ServerTimings(_Strict):
    """Timings measured by the miner; informative only (a validator measures its own)."""

    ttft_s: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    total_s: float = Field(ge=0.0, allow_inf_nan=False)


class _TokenLists(_Strict):
    token_ids: list[TokenId] = Field(max_length=MAX_NEW_TOKENS)
    logprobs: list[Logprob] = Field(max_length=MAX_NEW_TOKENS, description="Raw logprob of each sampled token.")
    ranks: list[Rank] = Field(max_length=MAX_NEW_TOKENS, description="Rank of each sampled token; 1 = argmax.")

    @model_validator(mode="after")
    def _same_lengths(self) -> _TokenLists:
        if not len(self.token_ids) == len(self.logprobs) == len(self.ranks):
            raise ValueError(
                f"token_ids, logprobs and ranks must have equal lengths "
                f"(got {len(self.token_ids)}, {len(self.logprobs)}, {len(self.ranks)})"
            )
        return self


class InferenceChunk(_TokenLists):
    """One streamed engine step: the tokens sampled in that step and the text they add.

    The last chunk carries ``finish_reason`` and ``usage``; earlier chunks leave them ``None``.
    """

    text: str = Field(default="", max_length=MAX_NEW_TOKENS * 64)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


class InferenceResponse(_TokenLists):
    """A whole completion (unary response, or a stream's chunks joined)."""

    text: str = Field(max_length=MAX_NEW_TOKENS * 64)
    finish_reason: FinishReason
    usage: Usage
    model: str = Field(default="", max_length=256)
    timings: ServerTimings | None = None

    @classmethod
    def from_chunks(
        cls, chunks: list[InferenceChunk], *, model: str = "", timings: ServerTimings | None = None
    ) -> InferenceResponse:
        """Join stream chunks; raises ``ValueError`` if the stream never finished."""
        if not chunks or chunks[-1].finish_reason is None:
            raise ValueError("stream ended without a final chunk carrying finish_reason")
        last = chunks[-1]
        ids = [t for c in chunks for t in c.token_ids]
        usage = last.usage or Usage(prompt_tokens=0, completion_tokens=len(ids))
        return cls(
            token_ids=ids,
            logprobs=[x for c in chunks for x in c.logprobs],
            ranks=[r for c in chunks for r in c.ranks],
            text="".join(c.text for c in chunks),
            finish_reason=last.finish_reason,
            usage=usage,
            model=model,
            timings=timings,
        )


class CapabilitiesRequest(_Strict):
    """Empty body: ``POST /Capabilities`` takes no parameters."""


class CapabilitiesResponse(_Strict):
    model: str = Field(max_length=256, description="Model name or path the miner serves.")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over the weight files.")
    engine: str = Field(max_length=64, description="Engine kind, e.g. 'hf' or 'vllm'.")
    context_length: int = Field(ge=1, le=10_000_000)
    version: str = Field(max_length=64, description="axongate version of the miner.")


class ErrorBody(BaseModel):
    """Every rejection the gateway sends: a stable error code and a human-readable detail."""

    error: str
    detail: str
