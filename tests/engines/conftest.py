"""Engine fixtures: prepared model folders and session-wide engines.

Engines are expensive to load, so each is built once per session and shared; the conformance
tests run on a session-scoped event loop (``loop_scope="session"``) because a vLLM engine is
bound to the loop it starts on. Tests use ``threads=1``: on a small shared machine one torch
thread is several times faster for small models than contended multi-threading.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from engine_support import EngineUnderTest

from neurons.engines import EngineConfig, build_engine
from neurons.models import resolve_model


@pytest.fixture(scope="session")
def tiny_model_dir(model_home: Path) -> Path:
    return resolve_model("tiny", model_home, progress=False)


@pytest.fixture(scope="session")
def smollm2_dir(model_home: Path) -> Path:
    """SmolLM2 prepared once per machine (under ``model_home``); the first run takes about a minute."""
    return resolve_model("smollm2", model_home, progress=False)


def vllm_available() -> bool:
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


ENGINE_PARAMS = [
    pytest.param("hf-tiny", id="hf-tiny"),
    pytest.param("vllm", id="vllm", marks=[pytest.mark.gpu, pytest.mark.slow]),
]


async def _build(name: str, home: Path) -> EngineUnderTest:
    if name == "hf-tiny":
        config = EngineConfig(model="tiny", threads=1, max_concurrency=8)
        engine = await asyncio.to_thread(build_engine, config, home, progress=False)
        return EngineUnderTest(name, engine, logprob_tolerance=1e-4, batch_invariant=True)
    if name == "hf-smollm2":
        config = EngineConfig(model="smollm2", threads=1, max_concurrency=4)
        engine = await asyncio.to_thread(build_engine, config, home, progress=False)
        return EngineUnderTest(name, engine, logprob_tolerance=1e-4, batch_invariant=True)
    if name == "vllm":
        if not vllm_available():
            pytest.skip("vllm engine needs a CUDA device and the vllm extra")
        from neurons.engines.config import VllmConfig

        config = EngineConfig(
            kind="vllm", model="smollm2", vllm=VllmConfig(gpu_memory_utilization=0.3, max_model_len=2048, seed=0)
        )
        engine = await asyncio.to_thread(build_engine, config, home, progress=False)
        # bf16 decode and prefill kernels differ: tolerance of the order seen between vLLM runs.
        return EngineUnderTest(name, engine, logprob_tolerance=0.1, batch_invariant=False)
    raise AssertionError(name)


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=ENGINE_PARAMS)
async def engine_under_test(request: pytest.FixtureRequest, model_home: Path) -> AsyncIterator[EngineUnderTest]:
    built = await _build(request.param, model_home)
    try:
        yield built
    finally:
        await built.engine.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def smollm2_engine(model_home: Path, smollm2_dir: Path) -> AsyncIterator[EngineUnderTest]:
    built = await _build("hf-smollm2", model_home)
    try:
        yield built
    finally:
        await built.engine.aclose()
