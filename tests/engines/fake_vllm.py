"""A stand-in for the parts of vLLM's API that ``VllmEngine`` uses, backed by an ``HfEngine``.

It lets the conformance suite exercise ``VllmEngine``'s own logic (DELTA outputs, per-position
``{token_id: Logprob}`` maps, prompt-logprob teacher forcing, finish reasons, error translation,
engine-argument mapping) on machines without a GPU. It mirrors vLLM's documented shapes; it is
not vLLM, whose real behaviour the ``vllm`` parametrisation checks on a GPU host.
"""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from neurons.engines.base import GenerationRequest
from neurons.engines.hf import HfEngine

MODULES = (
    "vllm",
    "vllm.inputs",
    "vllm.sampling_params",
    "vllm.exceptions",
    "vllm.engine",
    "vllm.engine.arg_utils",
    "vllm.v1",
    "vllm.v1.engine",
    "vllm.v1.engine.async_llm",
    "vllm.v1.engine.exceptions",
)


class RequestOutputKind(Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


class SamplingParams(types.SimpleNamespace):
    def __init__(self, **kwargs: Any) -> None:
        defaults = {"prompt_logprobs": None, "logprobs": None, "output_kind": RequestOutputKind.CUMULATIVE}
        super().__init__(**{**defaults, **kwargs})


class VllmDeadError(RuntimeError):
    pass


class VLLMClientError(Exception):
    pass


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]
    finished: bool
    prompt_logprobs: list[dict[int, Logprob] | None] | None = None


@dataclass
class AsyncEngineArgs:
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model = model
        self.kwargs = kwargs


class FakeAsyncLLM:
    """Serves ``generate`` from an ``HfEngine`` in vLLM's output shapes."""

    last_args: AsyncEngineArgs | None = None
    backend: HfEngine | None = None

    def __init__(self, backend: HfEngine) -> None:
        self._backend = backend
        info = backend.info
        self.model_config = types.SimpleNamespace(
            max_model_len=info.context_length, get_vocab_size=lambda: info.vocab_size
        )
        self.errored = False

    @classmethod
    def from_engine_args(cls, args: AsyncEngineArgs) -> FakeAsyncLLM:
        assert cls.backend is not None
        cls.last_args = args
        return cls(cls.backend)

    async def generate(self, prompt: dict[str, Any], params: SamplingParams, request_id: str) -> AsyncIterator[Any]:
        ids = list(prompt["prompt_token_ids"])
        if not request_id:
            raise VLLMClientError("request_id is required")
        if params.prompt_logprobs is not None:
            if len(ids) + params.max_tokens > self.model_config.max_model_len:
                raise ValueError("prompt too long")
            scored = await self._backend.score(ids[:1], ids[1:], k=params.prompt_logprobs)
            positions: list[dict[int, Logprob] | None] = [None]
            for s in scored:
                entry = {s.token_id: Logprob(s.logprob, s.rank)}
                entry.update(
                    {t: Logprob(lp, r + 1) for r, (t, lp) in enumerate(zip(s.top_ids, s.top_logprobs, strict=True))}
                )
                positions.append(entry)
            yield RequestOutput([CompletionOutput([ids[-1]], None, "length")], True, positions)
            return
        assert params.output_kind == RequestOutputKind.DELTA and params.logprobs == 0
        assert params.detokenize is False
        request = GenerationRequest(
            tuple(ids), params.max_tokens, params.temperature, params.top_p, params.top_k, params.seed, request_id
        )
        stream = self._backend.generate(request)
        try:  # like vLLM: closing this generator aborts the request
            async for chunk in stream:
                entries = zip(chunk.token_ids, chunk.logprobs, chunk.ranks, strict=True)
                maps = [{t: Logprob(lp, r)} for t, lp, r in entries]
                reason = None if chunk.finish_reason is None else str(chunk.finish_reason)
                yield RequestOutput([CompletionOutput(list(chunk.token_ids), maps, reason)], reason is not None)
        finally:
            await stream.aclose()

    def shutdown(self) -> None:
        self._backend.close()


_users = 0
_saved: dict[str, types.ModuleType | None] = {}


@contextmanager
def installed(backend: HfEngine) -> Iterator[None]:
    """Make the fake modules importable while at least one caller is inside this block.

    Reference-counted, so interleaved async callers never remove the modules under each other,
    and nothing is left in ``sys.modules`` once the last caller leaves.
    """
    global _users
    if _users == 0:
        _saved.clear()
        _saved.update({name: sys.modules.get(name) for name in MODULES})
        sys.modules.update(_fake_modules())
    FakeAsyncLLM.backend = backend
    _users += 1
    try:
        yield
    finally:
        _users -= 1
        if _users == 0:
            for name, module in _saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module


def _fake_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in MODULES}
    mods["vllm"].SamplingParams = SamplingParams
    mods["vllm.inputs"].TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    mods["vllm.sampling_params"].RequestOutputKind = RequestOutputKind
    mods["vllm.exceptions"].VLLMClientError = VLLMClientError
    mods["vllm.engine.arg_utils"].AsyncEngineArgs = AsyncEngineArgs
    mods["vllm.v1.engine.async_llm"].AsyncLLM = FakeAsyncLLM
    mods["vllm.v1.engine.exceptions"].EngineDeadError = VllmDeadError
    return mods
