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
from typing import Any

import fake_vllm
import pytest
import pytest_asyncio
from engine_support import EngineUnderTest

from neurons.engines import EngineConfig, VllmConfig, build_engine
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


SLOTS = 4
"""``max_concurrency`` of the HF engines under test."""

ENGINE_PARAMS = [
    pytest.param("hf-tiny", id="hf-tiny"),
    pytest.param("vllm-adapter", id="vllm-adapter"),
    pytest.param("vllm", id="vllm", marks=[pytest.mark.gpu, pytest.mark.slow]),
]


async def _build(name: str, home: Path) -> EngineUnderTest:
    if name == "hf-tiny":
        config = EngineConfig(model="tiny", threads=1, max_concurrency=SLOTS)
        engine = await asyncio.to_thread(build_engine, config, home, progress=False)
        return EngineUnderTest(name, engine, logprob_tolerance=1e-4, batch_invariant=True, slots=SLOTS)
    if name == "hf-smollm2":
        config = EngineConfig(model="smollm2", threads=1, max_concurrency=SLOTS)
        engine = await asyncio.to_thread(build_engine, config, home, progress=False)
        return EngineUnderTest(name, engine, logprob_tolerance=1e-4, batch_invariant=True, slots=SLOTS)
    if name == "vllm-adapter":
        # VllmEngine's own logic over a vLLM-shaped stand-in (fake_vllm) backed by the tiny HF engine.
        backend_config = EngineConfig(model="tiny", threads=1, max_concurrency=SLOTS)
        backend = await asyncio.to_thread(build_engine, backend_config, home, progress=False)
        config = EngineConfig(kind="vllm", model="tiny", vllm=VllmConfig(max_model_len=1024, seed=3))
        with fake_vllm.installed(backend):
            engine = await asyncio.to_thread(build_engine, config, home, progress=False)
        args = fake_vllm.FakeAsyncLLM.last_args
        assert args is not None and args.kwargs["logprobs_mode"] == "raw_logprobs" and args.kwargs["seed"] == 3
        wrapped = _WithFakeVllm(engine, backend)
        return EngineUnderTest(name, wrapped, logprob_tolerance=1e-4, batch_invariant=True, slots=SLOTS)
    if name == "vllm":
        if not vllm_available():
            pytest.skip("vllm engine needs a CUDA device and the vllm extra")
        config = EngineConfig(
            kind="vllm", model="smollm2", vllm=VllmConfig(gpu_memory_utilization=0.3, max_model_len=2048, seed=0)
        )
        engine = build_engine(config, home, progress=False)  # on the loop's thread, as vLLM expects
        # bf16 decode and prefill kernels differ; tolerance of the order reported for bf16 vLLM.
        return EngineUnderTest(name, engine, logprob_tolerance=0.2, batch_invariant=False, slots=64)
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


class _WithFakeVllm:
    """A ``VllmEngine`` whose calls run with the fake vllm modules importable (only during calls)."""

    def __init__(self, engine: Any, backend: Any) -> None:
        self._engine = engine
        self._backend = backend
        self.info = engine.info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    @property
    def requests_in_flight(self) -> int:
        return self._engine.requests_in_flight + self._backend.requests_in_flight

    @property
    def tokens_generated(self) -> int:
        """The backing HF engine's counter: shows whether an abort reached the (stand-in) backend."""
        return self._backend.tokens_generated

    async def generate(self, request: Any) -> AsyncIterator[Any]:
        with fake_vllm.installed(self._backend):
            stream = self._engine.generate(request)
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                await stream.aclose()

    async def score(self, *args: Any, **kwargs: Any) -> Any:
        with fake_vllm.installed(self._backend):
            return await self._engine.score(*args, **kwargs)

    async def aclose(self) -> None:
        with fake_vllm.installed(self._backend):
            await self._engine.aclose()
