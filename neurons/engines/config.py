"""``EngineConfig``: which engine a process builds, on which model, with which limits.

One frozen pydantic model, composed into the miner's and validator's settings (TOML ->
``AXONGATE_ENGINE__*`` environment -> flags). vLLM-only knobs live in the nested
``VllmConfig`` so the CPU engine's settings stay short.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EngineConfig", "VllmConfig"]


class VllmConfig(BaseModel):
    """Engine arguments passed to vLLM's ``AsyncEngineArgs`` (see vLLM's docs for each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    """Fraction of GPU memory vLLM may take for weights, activations and KV cache."""
    max_model_len: int | None = Field(default=None, ge=16)
    """Context length served; ``None`` takes the model's own limit."""
    max_num_seqs: int | None = Field(default=None, ge=1)
    """Most requests batched in one step; ``None`` keeps vLLM's default."""
    max_num_batched_tokens: int | None = Field(default=None, ge=16)
    """Token budget of one scheduler step (prefill chunking); ``None`` keeps vLLM's default."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Compute dtype; ``auto`` follows the checkpoint (bf16 for SmolLM2)."""
    quantization: str | None = None
    """vLLM quantization method (e.g. ``fp8``, ``awq``); ``None`` serves the weights as stored."""
    enable_prefix_caching: bool = True
    """Reuse KV cache across requests that share a prompt prefix."""
    seed: int = Field(default=0, ge=0)
    """Engine-level seed (requests without their own seed draw from it)."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    pipeline_parallel_size: int = Field(default=1, ge=1)
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    """``mp`` on one host, ``ray`` across hosts (start the Ray cluster first); ``None`` lets vLLM pick."""
    enforce_eager: bool = False
    """Skip CUDA graph capture: faster start, slower decode."""
    max_logprobs: int = Field(default=20, ge=1, le=1024)
    """Most top-k alternatives a score call may request."""


class EngineConfig(BaseModel):
    """Which engine to build and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["hf", "vllm"] = "hf"
    """``hf``: transformers on CPU (development, demo, validators without a GPU); ``vllm``: GPU."""
    model: str = Field(default="smollm2", min_length=1)
    """``smollm2`` (prepared from PyPI on first use), ``tiny`` (random test model) or a model folder."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """HF engine compute dtype. float32 is the reference numerics for verification on CPU."""
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    """HF engine attention kernel. On torch 2.13 CPU, SDPA decoded as fast as eager or faster in
    side-by-side runs (BENCHMARKS.md); both match ``score`` to ~1e-6 nats in float32."""
    threads: int | None = Field(default=None, ge=1, le=1024)
    """torch intra-op threads for the HF engine; ``None`` = all cores but one (the event loop needs one)."""
    max_concurrency: int = Field(default=8, ge=1, le=1024)
    """HF engine: requests decoded in interleaved steps; later ones wait in a queue."""
    throttle_tokens_per_s: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    """Cap each request's streaming speed (demo: a slow but honest miner); ``None`` = no cap."""
    vllm: VllmConfig = Field(default_factory=VllmConfig)
    """vLLM engine arguments; ignored by the HF engine."""
