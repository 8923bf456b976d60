"""The ``Engine`` seam: what a miner generates with and what a validator verifies with.

Two operations, implemented identically by every engine (transformers on CPU, vLLM on GPU):

- ``generate(request)``: an async iterator of :class:`TokenChunk`, one per engine step, carrying
  the sampled token ids, the text they add, and the *raw* logprob and rank of each sampled token
  (before temperature, top-k and top-p; rank 1 = argmax; vLLM's ``raw_logprobs`` convention).
- ``score(prompt_ids, completion_ids, k)``: teacher forcing in one forward pass; for each
  completion position the raw logprob and rank of the given token and the top-``k`` alternatives.

So ``score(prompt, generate(prompt).token_ids)`` reproduces the logprobs ``generate`` reported,
up to the engine's numerics.

Cancellation: closing or cancelling a ``generate`` iterator aborts the backend request and frees
its slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from protocol.errors import AxongateError
from protocol.synapses import ChatMessage, FinishReason

__all__ = [
    "Engine",
    "EngineDeadError",
    "EngineError",
    "EngineInfo",
    "GenerationRequest",
    "InvalidEngineRequest",
    "ScoredPosition",
    "TokenChunk",
]


class EngineError(AxongateError):
    """An engine failed for a reason other than the caller's input."""


class EngineDeadError(EngineError):
    """The engine's worker has died; every later call fails until it is rebuilt."""


class InvalidEngineRequest(AxongateError):
    """The request cannot be served, e.g. the prompt exceeds the context length."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine serves; feeds the ``Capabilities`` synapse."""

    model: str
    """Model name (folder name or hub-style id)."""
    weights_sha256: str
    """sha256 over the weight files, hex."""
    engine: str
    """Engine kind: ``"hf"`` or ``"vllm"``."""
    context_length: int
    """Most prompt + completion tokens per request."""
    eos_token_ids: frozenset[int]
    """Token ids that end generation."""
    vocab_size: int


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Engine-level request: tokenised prompt plus sampling parameters (see ``InferenceRequest``)."""

    prompt_ids: tuple[int, ...]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class TokenChunk:
    """One engine step. ``finish_reason`` is set on the last chunk only."""

    token_ids: tuple[int, ...]
    text: str
    logprobs: tuple[float, ...]
    ranks: tuple[int, ...]
    finish_reason: FinishReason | None = None


@dataclass(frozen=True, slots=True)
class ScoredPosition:
    """Teacher-forced view of one completion position."""

    token_id: int
    logprob: float
    """Raw logprob of ``token_id`` at this position."""
    rank: int
    """1 + number of vocabulary entries with a strictly larger logit (vLLM counts entries ``>=`` the
    token's, so its rank can be higher on exact ties; verifiers allow for that)."""
    top_ids: tuple[int, ...] = field(default=())
    top_logprobs: tuple[float, ...] = field(default=())


@runtime_checkable
class Engine(Protocol):
    """A text-generation backend. Implementations: ``HfEngine`` (CPU), ``VllmEngine`` (GPU)."""

    @property
    def info(self) -> EngineInfo: ...

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Apply the model's chat template with a generation prompt; returns token ids."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        """Detokenise without skipping special tokens."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        """Stream the completion; raises ``InvalidEngineRequest`` or ``EngineError``."""
        ...

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int], k: int = 5) -> list[ScoredPosition]:
        """Teacher-force ``completion_ids`` after ``prompt_ids``; one entry per completion token.

        Raises ``InvalidEngineRequest`` when prompt + completion do not fit the context (vLLM needs
        one spare position, so it scores at most ``context_length - 1`` tokens).
        """
        ...

    async def aclose(self) -> None:
        """Release the model and worker; idempotent."""
        ...
