"""``HfEngine``: the ``Engine`` seam on transformers + torch, for CPUs (development, demo, validators).

A dedicated model thread (``_hf_worker.ModelWorker``) runs every forward pass and interleaves
concurrent requests step by step; the async API only submits jobs and awaits their results, so
the event loop never blocks on the model. Numerics: fp32 (SDPA attention) by default, the
reference against which miners' answers are verified (``score`` agrees with the logprobs that
``generate`` reports to ~1e-6 nats).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from neurons.engines._checks import check_generation, check_score
from neurons.engines._hf_worker import ModelWorker, Sink
from neurons.engines._text import TextCodec, eos_token_ids
from neurons.engines.base import EngineError, EngineInfo, GenerationRequest, ScoredPosition, TokenChunk
from neurons.engines.config import EngineConfig
from neurons.models.digest import weights_sha256
from protocol.errors import ConfigError
from protocol.synapses import ChatMessage

__all__ = ["HfEngine"]


def default_torch_threads() -> int:
    """All cores but one: the event loop (gateway, client) needs a core of its own.

    Measured on 2 cores: with torch on both, SmolLM2 served through the gateway in the same
    process fell from 16 to 4 tok/s and requests hit the 120 s deadline (torch's worker threads
    spin while they wait and starve the loop); with one torch thread the gateway kept 98% of the
    direct speed (scripts/bench/engine_gateway.py).
    """
    return max(1, (os.cpu_count() or 2) - 1)


class HfEngine:
    """Engine on a local Hugging Face model folder; build with :meth:`load`."""

    def __init__(self, *, model: Any, codec: TextCodec, info: EngineInfo, config: EngineConfig) -> None:
        self._codec = codec
        self._info = info
        self._worker = ModelWorker(
            model,
            decode=codec.new_decoder(),
            eos_token_ids=info.eos_token_ids,
            max_concurrency=config.max_concurrency,
        )
        self._closed = False

    @classmethod
    def load(cls, model_dir: Path, config: EngineConfig | None = None) -> HfEngine:
        """Load ``model_dir`` (a Hugging Face folder); raises ``ConfigError`` if it cannot be loaded.

        Blocking (about a second for SmolLM2): call it before the event loop starts or in a thread.
        """
        import torch
        from transformers import AutoModelForCausalLM

        config = config or EngineConfig()
        model_dir = Path(model_dir)
        torch.set_num_threads(config.threads or default_torch_threads())
        codec = TextCodec.load(model_dir)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=getattr(torch, config.dtype), attn_implementation=config.attn_implementation
            ).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load model from {model_dir}: {exc}") from exc
        eos = eos_token_ids(model.generation_config.eos_token_id, codec.tokenizer.eos_token_id)
        if not eos:
            raise ConfigError(f"{model_dir}: neither the generation config nor the tokenizer names an EOS token")
        limits = [int(model.config.max_position_embeddings), codec.model_max_length or 2**62]
        info = EngineInfo(
            model=model_dir.name,
            weights_sha256=weights_sha256(model_dir),
            engine="hf",
            context_length=min(limits),
            eos_token_ids=eos,
            vocab_size=int(model.config.vocab_size),
        )
        return cls(model=model, codec=codec, info=info, config=config)

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def requests_in_flight(self) -> int:
        """Generate and score requests running or queued (for metrics; not part of the ``Engine`` seam)."""
        return self._worker.in_flight()

    @property
    def tokens_generated(self) -> int:
        """Tokens sampled since the engine started, aborted requests included (a metrics counter)."""
        return self._worker.tokens_generated

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self._codec.encode_chat(messages)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._codec.decode(token_ids)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        """Stream one chunk per token; the last chunk carries ``finish_reason``.

        Raises ``InvalidEngineRequest`` (bad parameters, prompt + max_tokens over the context
        length), ``EngineError`` or ``EngineDeadError``. Closing or cancelling the iterator
        aborts the request and frees its slot.
        """
        check_generation(request, self._info)
        if self._closed:
            raise EngineError("engine is closed")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        job = self._worker.submit_generate(request, Sink(asyncio.get_running_loop(), queue.put_nowait))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            self._worker.cancel(job)

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int], k: int = 5) -> list[ScoredPosition]:
        """Teacher-force ``completion_ids`` after ``prompt_ids`` in one forward pass.

        Raises ``InvalidEngineRequest`` for an empty prompt, out-of-vocabulary ids, a total
        over the context length or ``k`` outside ``[0, vocab_size]``.
        """
        prompt, completion = list(prompt_ids), list(completion_ids)
        info = self._info
        check_score(prompt, completion, k, info, max_k=info.vocab_size, max_total=info.context_length)
        if self._closed:
            raise EngineError("engine is closed")
        if not completion:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def deliver(item: Any) -> None:
            if not future.done():
                future.set_result(item)

        job = self._worker.submit_score(prompt + completion[:-1], completion, k, Sink(loop, deliver))
        try:
            result = await future
        finally:
            self._worker.cancel(job)
        if isinstance(result, BaseException):
            raise result
        return result

    async def aclose(self) -> None:
        """Stop the model thread and release the model; idempotent."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Synchronous :meth:`aclose` (for fixtures and shutdown hooks); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._worker.close()
