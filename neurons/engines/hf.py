"""``HfEngine``: the ``Engine`` seam on transformers + torch, for CPUs (development, demo, validators).

A dedicated model thread (``_hf_worker.ModelWorker``) runs every forward pass and interleaves
concurrent requests step by step; the async API only submits jobs and awaits their results, so
the event loop never blocks on the model. Numerics: fp32 with eager attention by default, the
reference against which miners' answers are verified (``score`` agrees with the logprobs that
``generate`` reports to ~1e-6 nats).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from neurons.engines._hf_worker import ModelWorker, Sink
from neurons.engines.base import (
    EngineError,
    EngineInfo,
    GenerationRequest,
    InvalidEngineRequest,
    ScoredPosition,
    TokenChunk,
)
from neurons.engines.config import EngineConfig
from neurons.models.digest import weights_sha256
from protocol.errors import ConfigError
from protocol.synapses import ChatMessage

__all__ = ["HfEngine"]

_UNSET_MAX_LENGTH = 10**9
"""transformers reports ``model_max_length`` ~1e30 when a tokenizer does not know its limit."""


class HfEngine:
    """Engine on a local Hugging Face model folder; build with :meth:`load`."""

    def __init__(self, *, model: Any, tokenizer: Any, info: EngineInfo, config: EngineConfig) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = tokenizer
        self._tokenizer_lock = threading.Lock()
        serialized = tokenizer.backend_tokenizer.to_str()
        # One raw tokenizer per thread: the Rust tokenizer refuses concurrent mutable borrows.
        self._loop_decoder = Tokenizer.from_str(serialized)
        worker_decoder = Tokenizer.from_str(serialized)
        self._info = info
        self._config = config
        self._worker = ModelWorker(
            model,
            decode=lambda ids: worker_decoder.decode(list(ids), skip_special_tokens=False),
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
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = config or EngineConfig()
        model_dir = Path(model_dir)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=getattr(torch, config.dtype), attn_implementation=config.attn_implementation
            ).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load model from {model_dir}: {exc}") from exc
        if not hasattr(tokenizer, "backend_tokenizer"):
            raise ConfigError(f"{model_dir}: the HF engine needs a fast (tokenizers) tokenizer")
        eos = set(_as_ids(model.generation_config.eos_token_id)) | set(_as_ids(tokenizer.eos_token_id))
        if not eos:
            raise ConfigError(f"{model_dir}: neither the generation config nor the tokenizer names an EOS token")
        limits = [model.config.max_position_embeddings]
        if tokenizer.model_max_length and tokenizer.model_max_length < _UNSET_MAX_LENGTH:
            limits.append(int(tokenizer.model_max_length))
        info = EngineInfo(
            model=model_dir.name,
            weights_sha256=weights_sha256(model_dir),
            engine="hf",
            context_length=min(limits),
            eos_token_ids=frozenset(eos),
            vocab_size=int(model.config.vocab_size),
        )
        return cls(model=model, tokenizer=tokenizer, info=info, config=config)

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def requests_in_flight(self) -> int:
        """Generate and score requests running or queued (for metrics; not part of the ``Engine`` seam)."""
        return self._worker.in_flight()

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Apply the chat template with a generation prompt; thread-safe."""
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        with self._tokenizer_lock:
            encoded = self._tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        return [int(i) for i in encoded["input_ids"]]

    def decode(self, token_ids: Sequence[int]) -> str:
        """Detokenise without skipping special tokens (the text ``generate`` streams)."""
        return self._loop_decoder.decode(list(token_ids), skip_special_tokens=False)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        """Stream one chunk per token; the last chunk carries ``finish_reason``.

        Raises ``InvalidEngineRequest`` (bad parameters, prompt + max_tokens over the context
        length), ``EngineError`` or ``EngineDeadError``. Closing or cancelling the iterator
        aborts the request and frees its slot.
        """
        self._check_generation(request)
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
        self._check_ids(prompt, "prompt_ids", allow_empty=False)
        self._check_ids(completion, "completion_ids", allow_empty=True)
        if not 0 <= k <= self._info.vocab_size:
            raise InvalidEngineRequest(f"k must be in [0, {self._info.vocab_size}], got {k}")
        if len(prompt) + len(completion) > self._info.context_length:
            raise InvalidEngineRequest(
                f"prompt ({len(prompt)}) + completion ({len(completion)}) tokens exceed the context length "
                f"{self._info.context_length}"
            )
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

    def _check_generation(self, request: GenerationRequest) -> None:
        self._check_ids(list(request.prompt_ids), "prompt_ids", allow_empty=False)
        if request.max_tokens < 1:
            raise InvalidEngineRequest(f"max_tokens must be >= 1, got {request.max_tokens}")
        if not request.temperature >= 0.0 or request.temperature == float("inf"):
            raise InvalidEngineRequest(f"temperature must be a finite number >= 0, got {request.temperature}")
        if not 0.0 < request.top_p <= 1.0:
            raise InvalidEngineRequest(f"top_p must be in (0, 1], got {request.top_p}")
        if request.top_k < 0:
            raise InvalidEngineRequest(f"top_k must be >= 0, got {request.top_k}")
        if request.seed is not None and not 0 <= request.seed < 2**63:
            raise InvalidEngineRequest(f"seed must be in [0, 2**63), got {request.seed}")
        total = len(request.prompt_ids) + request.max_tokens
        if total > self._info.context_length:
            raise InvalidEngineRequest(
                f"prompt ({len(request.prompt_ids)} tokens) + max_tokens ({request.max_tokens}) exceeds the context "
                f"length {self._info.context_length}"
            )
        if self._closed:
            raise EngineError("engine is closed")

    def _check_ids(self, ids: list[int], name: str, *, allow_empty: bool) -> None:
        if not ids and not allow_empty:
            raise InvalidEngineRequest(f"{name} must not be empty")
        vocab = self._info.vocab_size
        bad = next((i for i in ids if not isinstance(i, int) or not 0 <= i < vocab), None)
        if bad is not None:
            raise InvalidEngineRequest(f"{name} holds {bad!r}, outside the vocabulary [0, {vocab})")


def _as_ids(value: int | Sequence[int] | None) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]
