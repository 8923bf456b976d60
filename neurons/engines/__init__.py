"""Engines: the ``Engine`` seam (``base``), its configuration and the factory that builds one.

Importing this package is cheap: torch, transformers and vLLM are imported only when
``build_engine`` builds the engine that needs them (vLLM only for ``kind == "vllm"``).
"""

from __future__ import annotations

from pathlib import Path

from neurons.engines.base import (
    Engine,
    EngineDeadError,
    EngineError,
    EngineInfo,
    GenerationRequest,
    InvalidEngineRequest,
    ScoredPosition,
    TokenChunk,
)
from neurons.engines.config import EngineConfig, VllmConfig

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineDeadError",
    "EngineError",
    "EngineInfo",
    "GenerationRequest",
    "InvalidEngineRequest",
    "ScoredPosition",
    "TokenChunk",
    "VllmConfig",
    "build_engine",
]


def build_engine(config: EngineConfig, home: Path, *, progress: bool = True) -> Engine:
    """Resolve (and if needed prepare) ``config.model`` under ``home`` and load the configured engine.

    Blocking: loading takes seconds (minutes for a first ``smollm2`` preparation or a vLLM
    start), so call it before serving or from a thread. Raises ``ConfigError`` for a bad model
    spec or a missing optional dependency, ``ModelPrepareError`` when preparation fails.
    """
    from neurons.models import resolve_model

    model_dir = resolve_model(config.model, home, progress=progress)
    engine: Engine
    if config.kind == "vllm":
        from neurons.engines.vllm import VllmEngine

        engine = VllmEngine.load(model_dir, config)
    else:
        from neurons.engines.hf import HfEngine

        engine = HfEngine.load(model_dir, config)
    if config.throttle_tokens_per_s is not None:
        from neurons.engines._throttle import ThrottledEngine

        engine = ThrottledEngine(engine, config.throttle_tokens_per_s)
    return engine
