"""The HF engine's parts: incremental detokenisation, sampling, throttling, factory and lifecycle."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tokenizers import Tokenizer

from neurons.engines import EngineConfig, EngineError, GenerationRequest, build_engine
from neurons.engines._detokenize import IncrementalDetokenizer
from neurons.engines._sampling import make_generator, ranks_of, sample_token
from neurons.engines._throttle import ThrottledEngine
from neurons.engines.hf import HfEngine


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))


def _stream(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    detok = IncrementalDetokenizer(lambda xs: tokenizer.decode(list(xs), skip_special_tokens=False))
    return [detok.push(i) for i in ids] + [detok.flush()]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_detokenized_stream_equals_full_decode(tiny_tokenizer: Tokenizer, data: st.DataObject) -> None:
    ids = data.draw(st.lists(st.integers(0, tiny_tokenizer.get_vocab_size() - 1), max_size=40))
    pieces = _stream(tiny_tokenizer, ids)
    assert "".join(pieces) == tiny_tokenizer.decode(ids, skip_special_tokens=False)
    assert all(not p.endswith("\ufffd") for p in pieces[:-1])


def test_multibyte_characters_are_held_back_until_complete(tiny_tokenizer: Tokenizer) -> None:
    text = "é€🦊"
    ids = [tiny_tokenizer.token_to_id(tok) for tok in tiny_tokenizer.encode(text).tokens]
    assert len(ids) > len(text), "expected characters split over several byte tokens"
    pieces = _stream(tiny_tokenizer, ids)
    assert "".join(pieces) == text
    assert [p for p in pieces if p] == ["é", "€", "🦊"]


def test_greedy_and_degenerate_filters_pick_the_argmax() -> None:
    logits = torch.tensor([0.1, 2.0, 1.9, -3.0, 2.0])
    gen = make_generator(0)
    assert sample_token(logits, temperature=0.0, top_p=1.0, top_k=0, generator=gen) == 1
    for _ in range(20):
        assert sample_token(logits, temperature=1.0, top_p=1.0, top_k=1, generator=gen) in (1, 4)
        assert sample_token(logits, temperature=1.0, top_p=1e-6, top_k=0, generator=gen) == 1


def test_top_k_and_top_p_restrict_the_support() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    gen = make_generator(1)
    top_k = {sample_token(logits, temperature=1.0, top_p=1.0, top_k=2, generator=gen) for _ in range(300)}
    assert top_k == {0, 1}
    top_p = {sample_token(logits, temperature=1.0, top_p=0.9, top_k=0, generator=gen) for _ in range(300)}
    assert top_p == {0, 1, 2}
    everything = {sample_token(logits, temperature=1.0, top_p=1.0, top_k=0, generator=gen) for _ in range(600)}
    assert everything == {0, 1, 2, 3}


def test_same_seed_same_draws() -> None:
    logits = torch.randn(100, generator=make_generator(5))
    draw = lambda seed: [  # noqa: E731
        sample_token(logits, temperature=1.0, top_p=1.0, top_k=0, generator=g) for g in [make_generator(seed)] * 20
    ]
    assert draw(9) == draw(9) != draw(10)


def test_rank_counts_strictly_larger_logits() -> None:
    logits = torch.tensor([[3.0, 1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 5.0]])
    assert ranks_of(logits, torch.tensor([0, 1])).tolist() == [1, 2]
    assert ranks_of(logits, torch.tensor([3, 3])).tolist() == [3, 1]
    assert ranks_of(logits, torch.tensor([1, 0])).tolist() == [4, 2]


def test_engine_config_is_strict() -> None:
    assert EngineConfig().kind == "hf" and EngineConfig().vllm.gpu_memory_utilization == 0.9
    with pytest.raises(ValidationError):
        EngineConfig(kind="tgi")
    with pytest.raises(ValidationError):
        EngineConfig(unknown=1)
    with pytest.raises(ValidationError):
        EngineConfig(max_concurrency=0)
    with pytest.raises(ValidationError):
        EngineConfig(vllm={"distributed_executor_backend": "slurm"})


def test_importing_and_using_the_hf_engine_never_imports_vllm(model_home: Path) -> None:
    code = f"""
import asyncio, sys
from pathlib import Path
import neurons.engines as engines
assert "torch" not in sys.modules, "importing neurons.engines must stay light"
engine = engines.build_engine(engines.EngineConfig(model="tiny", threads=1), Path({str(model_home)!r}), progress=False)
async def run():
    async for _ in engine.generate(engines.GenerationRequest((1, 2, 3), max_tokens=2)):
        pass
    await engine.aclose()
asyncio.run(run())
print("vllm" in sys.modules, any(name.startswith("vllm") for name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]


async def test_throttle_caps_tokens_per_second(tiny_model_dir: Path) -> None:
    engine = ThrottledEngine(HfEngine.load(tiny_model_dir, EngineConfig(threads=1)), tokens_per_s=40.0)
    try:
        started = time.monotonic()
        request = GenerationRequest((1, 2, 3), max_tokens=8, seed=1)
        tokens = [t async for c in engine.generate(request) for t in c.token_ids]
        elapsed_s = time.monotonic() - started
        assert len(tokens) >= 1
        assert elapsed_s >= (len(tokens) - 1) / 40.0
        assert engine.info.engine == "hf" and engine.decode(tokens) == engine.inner.decode(tokens)
    finally:
        await engine.aclose()


async def test_closed_engine_refuses_work_and_close_is_idempotent(model_home: Path) -> None:
    engine = await asyncio.to_thread(build_engine, EngineConfig(model="tiny", threads=1), model_home, progress=False)
    stream = engine.generate(GenerationRequest((1, 2, 3), max_tokens=500, temperature=1.0, seed=7))  # no early EOS
    await anext(stream)
    await engine.aclose()
    with pytest.raises(EngineError):
        async for _ in stream:
            pass
    await engine.aclose()
    with pytest.raises(EngineError):
        await anext(engine.generate(GenerationRequest((1, 2, 3), max_tokens=2)))
    with pytest.raises(EngineError):
        await engine.score([1, 2], [3])
