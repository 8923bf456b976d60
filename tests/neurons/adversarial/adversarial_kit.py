"""Helpers of the adversarial suite (imported by its tests; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurons.challenges import ChallengeGenerator
from neurons.engines import EngineConfig, build_engine
from neurons.engines.base import Engine
from neurons.scoring import ScoringConfig, Verdict, verify_answer
from protocol.client import MinerClient, MinerTarget, QueryResult
from protocol.synapses import InferenceRequest

CONFIG = ScoringConfig(min_new_tokens=8, max_new_tokens=32)
"""Short answers keep the suite fast; every check still runs on every answer."""
QUERY_TIMEOUT_S = 30.0


def challenges(seed: int, n: int, config: ScoringConfig = CONFIG) -> list[InferenceRequest]:
    generator = ChallengeGenerator(seed, config=config)
    return [generator.next().request for _ in range(n)]


def build(model: str, home: Path, **overrides: Any) -> Engine:
    """A transformers engine with one torch thread (several contend badly on a small shared machine)."""
    return build_engine(EngineConfig(model=model, threads=1, **overrides), home, progress=False)


async def query_and_verify(
    client: MinerClient,
    target: MinerTarget,
    validator: Engine,
    request: InferenceRequest,
    *,
    timeout_s: float = QUERY_TIMEOUT_S,
) -> tuple[QueryResult, Verdict]:
    """What the validator loop does for one miner: query, then verify with its own engine."""
    result = await client.infer(target, request, timeout_s=timeout_s)
    return result, await verify_answer(validator, request, result, CONFIG)
