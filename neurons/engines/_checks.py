"""Request validation shared by the engines, so both reject the same inputs with the same messages."""

from __future__ import annotations

import math
from collections.abc import Sequence

from neurons.engines.base import EngineInfo, GenerationRequest, InvalidEngineRequest

__all__ = ["check_generation", "check_score"]

_MAX_SEED = 2**63


def check_generation(request: GenerationRequest, info: EngineInfo) -> None:
    """Raise ``InvalidEngineRequest`` naming the first bad field of ``request``."""
    _check_ids(request.prompt_ids, "prompt_ids", info, allow_empty=False)
    if request.max_tokens < 1:
        raise InvalidEngineRequest(f"max_tokens must be >= 1, got {request.max_tokens}")
    if not (math.isfinite(request.temperature) and request.temperature >= 0.0):
        raise InvalidEngineRequest(f"temperature must be a finite number >= 0, got {request.temperature}")
    if not 0.0 < request.top_p <= 1.0:
        raise InvalidEngineRequest(f"top_p must be in (0, 1], got {request.top_p}")
    if request.top_k < 0:
        raise InvalidEngineRequest(f"top_k must be >= 0 (0 disables it), got {request.top_k}")
    if request.seed is not None and not 0 <= request.seed < _MAX_SEED:
        raise InvalidEngineRequest(f"seed must be in [0, 2**63), got {request.seed}")
    if len(request.prompt_ids) + request.max_tokens > info.context_length:
        raise InvalidEngineRequest(
            f"prompt ({len(request.prompt_ids)} tokens) + max_tokens ({request.max_tokens}) exceeds the context "
            f"length {info.context_length}"
        )


def check_score(
    prompt_ids: Sequence[int], completion_ids: Sequence[int], k: int, info: EngineInfo, *, max_k: int, max_total: int
) -> None:
    """Raise ``InvalidEngineRequest`` unless ``score(prompt_ids, completion_ids, k)`` can be served."""
    _check_ids(prompt_ids, "prompt_ids", info, allow_empty=False)
    _check_ids(completion_ids, "completion_ids", info, allow_empty=True)
    if not 0 <= k <= max_k:
        raise InvalidEngineRequest(f"k must be in [0, {max_k}], got {k}")
    if len(prompt_ids) + len(completion_ids) > max_total:
        raise InvalidEngineRequest(
            f"prompt ({len(prompt_ids)}) + completion ({len(completion_ids)}) tokens exceed the context length "
            f"{info.context_length}" + ("" if max_total == info.context_length else f" (at most {max_total} scored)")
        )


def _check_ids(ids: Sequence[int], name: str, info: EngineInfo, *, allow_empty: bool) -> None:
    if not ids and not allow_empty:
        raise InvalidEngineRequest(f"{name} must not be empty")
    bad = next((i for i in ids if not isinstance(i, int) or not 0 <= i < info.vocab_size), None)
    if bad is not None:
        raise InvalidEngineRequest(f"{name} holds {bad!r}, outside the vocabulary [0, {info.vocab_size})")
