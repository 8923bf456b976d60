"""``VllmEngine``: the ``Engine`` seam on vLLM's in-process ``AsyncLLM`` (GPU miners and validators).

- generate: ``SamplingParams(output_kind=DELTA, logprobs=0)`` streams each engine step's new
  token ids with the raw logprob and rank of each sampled token (vLLM's default
  ``logprobs_mode="raw_logprobs"``, set explicitly). vLLM's own detokenizer is switched off; the
  text comes from the same incremental detokenizer as the HF engine, so both engines stream
  identical text for identical ids.
- score: classic teacher forcing, ``prompt + completion`` as the prompt with ``max_tokens=1``
  and ``prompt_logprobs=k`` (one prefill); vLLM needs room for that one extra token, so a
  validator on vLLM scores at most ``context_length - 1`` tokens.
- Rank convention: vLLM counts vocabulary entries whose logprob is ``>=`` the token's, so on
  exact ties its rank is larger than the HF engine's ``1 + strictly greater`` count.
- Cancellation: closing this iterator closes vLLM's generator, which aborts the request.

vLLM is imported lazily (it is an optional extra that replaces the CPU torch build).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neurons.engines._checks import check_generation, check_score
from neurons.engines._detokenize import IncrementalDetokenizer
from neurons.engines._text import TextCodec, eos_token_ids
from neurons.engines.base import (
    EngineDeadError,
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
from protocol.synapses import ChatMessage, FinishReason

__all__ = ["VllmEngine"]


class VllmEngine:
    """Engine on vLLM ``AsyncLLM``; build with :meth:`load` (blocking: starts the engine core process)."""

    def __init__(self, *, llm: Any, codec: TextCodec, info: EngineInfo, config: EngineConfig) -> None:
        self._llm = llm
        self._codec = codec
        self._info = info
        self._max_logprobs = config.vllm.max_logprobs
        self._in_flight = 0
        self._closed = False

    @classmethod
    def load(cls, model_dir: Path, config: EngineConfig) -> VllmEngine:
        """Start vLLM on ``model_dir``; raises ``ConfigError`` without the vllm extra or for bad engine args.

        Call it on the thread whose event loop will use the engine (as vLLM's own server does):
        ``AsyncLLM`` ties its output handler and ZMQ sockets to that loop. It blocks for the
        engine start-up (tens of seconds), so do it before serving.
        """
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise ConfigError(f"engine kind 'vllm' needs the vllm extra (pip install 'axongate[vllm]'): {exc}") from exc
        model_dir = Path(model_dir)
        codec = TextCodec.load(model_dir)
        options = config.vllm.model_dump()
        args: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        try:
            llm = AsyncLLM.from_engine_args(
                AsyncEngineArgs(model=str(model_dir), tokenizer=str(model_dir), logprobs_mode="raw_logprobs", **args)
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"vLLM rejected the engine arguments {args}: {exc}") from exc
        model_config = llm.model_config
        eos = eos_token_ids(_generation_eos(model_dir), codec.tokenizer.eos_token_id)
        info = EngineInfo(
            model=model_dir.name,
            weights_sha256=weights_sha256(model_dir),
            engine="vllm",
            context_length=int(model_config.max_model_len),
            eos_token_ids=eos,
            vocab_size=int(model_config.get_vocab_size()),
        )
        return cls(llm=llm, codec=codec, info=info, config=config)

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def requests_in_flight(self) -> int:
        """Generate and score calls not yet finished (for metrics; not part of the ``Engine`` seam)."""
        return self._in_flight

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self._codec.encode_chat(messages)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._codec.decode(token_ids)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        """Stream one chunk per engine step (usually one token); the last chunk carries ``finish_reason``."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        check_generation(request, self._info)
        self._check_open()
        with _vllm_errors():
            params = SamplingParams(
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=request.top_k,
                seed=request.seed,
                logprobs=0,
                stop_token_ids=sorted(self._info.eos_token_ids),
                output_kind=RequestOutputKind.DELTA,
                detokenize=False,
                skip_special_tokens=False,
            )
        prompt = TokensPrompt(prompt_token_ids=list(request.prompt_ids))
        stream = self._llm.generate(prompt, params, _request_id(request.request_id))
        detokenizer = IncrementalDetokenizer(self._codec.decode)
        self._in_flight += 1
        try:
            with _vllm_errors():
                async for output in stream:
                    completion = output.outputs[0]
                    ids = tuple(int(t) for t in completion.token_ids)
                    finish = _finish_reason(completion.finish_reason)
                    if not ids and finish is None:
                        continue
                    logprobs, ranks = _sampled_logprobs(completion.logprobs, ids)
                    text = "".join(detokenizer.push(t) for t in ids)
                    if finish is not None:
                        text += detokenizer.flush()
                    yield TokenChunk(ids, text, logprobs, ranks, finish)
                    if finish is not None:
                        return
            raise EngineError("vLLM ended the stream without a finish reason")
        finally:
            self._in_flight -= 1
            await stream.aclose()

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int], k: int = 5) -> list[ScoredPosition]:
        """Teacher-force ``completion_ids`` after ``prompt_ids`` with one prefill (``prompt_logprobs``)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        prompt, completion = list(prompt_ids), list(completion_ids)
        info = self._info
        check_score(prompt, completion, k, info, max_k=self._max_logprobs, max_total=info.context_length - 1)
        self._check_open()
        if not completion:
            return []
        with _vllm_errors():
            params = SamplingParams(
                max_tokens=1,
                temperature=0.0,
                prompt_logprobs=k,
                output_kind=RequestOutputKind.FINAL_ONLY,
                detokenize=False,
            )
        stream = self._llm.generate(TokensPrompt(prompt_token_ids=prompt + completion), params, _request_id("score"))
        self._in_flight += 1
        final = None
        try:
            with _vllm_errors():
                async for output in stream:
                    final = output
        finally:
            self._in_flight -= 1
            await stream.aclose()
        if final is None or final.prompt_logprobs is None:
            raise EngineError("vLLM returned no prompt logprobs")
        positions = final.prompt_logprobs
        return [_scored(positions[len(prompt) + j], token, k) for j, token in enumerate(completion)]

    async def aclose(self) -> None:
        """Shut the engine core down; idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._llm.shutdown)

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError("engine is closed")
        if getattr(self._llm, "errored", False):
            raise EngineDeadError("vLLM engine core has died")


@contextmanager
def _vllm_errors() -> Iterator[None]:
    """Re-raise vLLM's errors as axongate's, so the seam's callers catch one hierarchy."""
    from vllm.v1.engine.exceptions import EngineDeadError as VllmDeadError

    try:
        import vllm.exceptions as vllm_exceptions

        client_errors: tuple[type[BaseException], ...] = (ValueError, vllm_exceptions.VLLMClientError)
    except (ImportError, AttributeError):
        client_errors = (ValueError,)
    try:
        yield
    except (EngineError, InvalidEngineRequest):
        raise
    except VllmDeadError as exc:
        raise EngineDeadError(f"vLLM engine core died: {exc}") from exc
    except client_errors as exc:
        raise InvalidEngineRequest(f"vLLM rejected the request: {exc}") from exc
    except Exception as exc:
        raise EngineError(f"vLLM request failed: {exc!r}") from exc


def _request_id(prefix: str) -> str:
    """vLLM needs unique ids; callers' ids may repeat, so a random suffix keeps them apart."""
    return f"{prefix or 'gen'}-{uuid.uuid4().hex}"


def _finish_reason(value: str | None) -> FinishReason | None:
    if value is None:
        return None
    if value == "stop":
        return FinishReason.STOP
    if value == "length":
        return FinishReason.LENGTH
    raise EngineError(f"vLLM ended the request with finish reason {value!r}")


def _sampled_logprobs(positions: Any, ids: tuple[int, ...]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Logprob and rank of each sampled id from vLLM's per-position ``{token_id: Logprob}`` maps."""
    if not ids:
        return (), ()
    if positions is None or len(positions) < len(ids):
        raise EngineError("vLLM returned fewer logprob positions than tokens")
    offset = len(positions) - len(ids)
    entries = [positions[offset + i][token] for i, token in enumerate(ids)]
    return tuple(float(e.logprob) for e in entries), tuple(int(e.rank) for e in entries)


def _scored(position: dict[int, Any], token: int, k: int) -> ScoredPosition:
    chosen = position[token]
    top = sorted(((e.rank, tid, e.logprob) for tid, e in position.items() if e.rank is not None and e.rank <= k))[:k]
    return ScoredPosition(
        token_id=token,
        logprob=float(chosen.logprob),
        rank=int(chosen.rank),
        top_ids=tuple(int(tid) for _, tid, _ in top),
        top_logprobs=tuple(float(lp) for _, _, lp in top),
    )


def _generation_eos(model_dir: Path) -> int | list[int] | None:
    import json

    path = model_dir / "generation_config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("eos_token_id")
