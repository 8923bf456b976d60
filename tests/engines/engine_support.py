"""Shared helpers of the engine tests (importable from test modules, unlike ``conftest``)."""

from __future__ import annotations

from dataclasses import dataclass

from neurons.engines.base import Engine


@dataclass(frozen=True)
class EngineUnderTest:
    """An engine plus what the suite may expect of its numerics."""

    name: str
    engine: Engine
    logprob_tolerance: float
    """Largest |generate logprob - score logprob| accepted, in nats."""
    batch_invariant: bool
    """Whether a request's tokens are identical whether it runs alone or among others."""
    slots: int
    """Requests the engine runs at once (more wait in its queue)."""
