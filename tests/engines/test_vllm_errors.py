"""``VllmEngine`` turns vLLM's failures into axongate's error hierarchy (on the fake vllm modules)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fake_vllm
import pytest

from neurons.engines import EngineConfig, EngineDeadError, EngineError, GenerationRequest, InvalidEngineRequest
from neurons.engines._text import TextCodec
from neurons.engines.base import EngineInfo
from neurons.engines.vllm import VllmEngine


class _FailingLLM:
    """Yields ``outputs`` then raises ``error`` (if any), like a vLLM request stream that fails."""

    errored = False

    def __init__(self, error: BaseException | None = None, outputs: list[Any] | None = None) -> None:
        self.error = error
        self.outputs = outputs or []
        self.closed = False

    async def generate(self, prompt: Any, params: Any, request_id: str) -> AsyncIterator[Any]:
        try:
            for output in self.outputs:
                yield output
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True

    def shutdown(self) -> None:
        pass


def _engine(tiny_model_dir: Path, llm: Any) -> VllmEngine:
    info = EngineInfo("tiny", "0" * 64, "vllm", 64, frozenset({2}), 384)
    return VllmEngine(llm=llm, codec=TextCodec.load(tiny_model_dir), info=info, config=EngineConfig(kind="vllm"))


def _output(ids: list[int], reason: str | None) -> Any:
    maps = [{t: fake_vllm.Logprob(-0.5, 1)} for t in ids]
    return fake_vllm.RequestOutput([fake_vllm.CompletionOutput(ids, maps, reason)], reason is not None)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (fake_vllm.VllmDeadError("core gone"), EngineDeadError),
        (fake_vllm.VLLMClientError("bad"), InvalidEngineRequest),
        (ValueError("too long"), InvalidEngineRequest),
        (RuntimeError("boom"), EngineError),
    ],
)
async def test_vllm_errors_are_translated(tiny_model_dir: Path, error: Exception, expected: type) -> None:
    llm = _FailingLLM(error, [_output([5], None)])
    engine = _engine(tiny_model_dir, llm)
    with fake_vllm.installed(None):  # type: ignore[arg-type]
        stream = engine.generate(GenerationRequest((1, 2), max_tokens=4))
        assert (await anext(stream)).token_ids == (5,)
        with pytest.raises(expected):
            await anext(stream)
    assert llm.closed and engine.requests_in_flight == 0


async def test_abort_finish_reason_is_an_error(tiny_model_dir: Path) -> None:
    engine = _engine(tiny_model_dir, _FailingLLM(None, [_output([5], "abort")]))
    with fake_vllm.installed(None), pytest.raises(EngineError, match="abort"):  # type: ignore[arg-type]
        async for _ in engine.generate(GenerationRequest((1, 2), max_tokens=4)):
            pass


async def test_stream_without_finish_reason_is_an_error(tiny_model_dir: Path) -> None:
    engine = _engine(tiny_model_dir, _FailingLLM(None, [_output([5], None)]))
    with fake_vllm.installed(None), pytest.raises(EngineError, match="without a finish reason"):  # type: ignore[arg-type]
        async for _ in engine.generate(GenerationRequest((1, 2), max_tokens=4)):
            pass


async def test_multi_token_delta_steps_keep_text_and_logprobs_aligned(tiny_model_dir: Path) -> None:
    ids = TextCodec.load(tiny_model_dir).tokenizer("héllo wörld")["input_ids"]
    half = len(ids) // 2
    engine = _engine(tiny_model_dir, _FailingLLM(None, [_output(ids[:half], None), _output(ids[half:], "length")]))
    with fake_vllm.installed(None):  # type: ignore[arg-type]
        chunks = [c async for c in engine.generate(GenerationRequest((1, 2), max_tokens=len(ids)))]
    assert [len(c.token_ids) for c in chunks] == [half, len(ids) - half]
    assert all(len(c.logprobs) == len(c.ranks) == len(c.token_ids) for c in chunks)
    assert "".join(c.text for c in chunks) == "héllo wörld"
    assert chunks[-1].finish_reason == "length"


async def test_score_needs_room_for_one_extra_token(tiny_model_dir: Path) -> None:
    engine = _engine(tiny_model_dir, _FailingLLM())
    with fake_vllm.installed(None), pytest.raises(InvalidEngineRequest, match="at most 63"):  # type: ignore[arg-type]
        await engine.score([1] * 32, [1] * 32)
    with fake_vllm.installed(None), pytest.raises(InvalidEngineRequest, match="k must be"):  # type: ignore[arg-type]
        await engine.score([1], [1], k=21)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
async def test_missing_vllm_is_a_clear_config_error(tiny_model_dir: Path) -> None:
    from protocol.errors import ConfigError

    with pytest.raises(ConfigError, match="vllm extra"):
        VllmEngine.load(tiny_model_dir, EngineConfig(kind="vllm"))
