"""Rewards, EMA and weights: pure functions from one step's measurements to a weight vector.

Reward of one answer (0 for anything unverified, failed or timed out)::

    reward = verified * (w_tps * tps / best_tps + w_ttft * best_ttft / ttft) / (w_tps + w_ttft)

``best_tps`` and ``best_ttft`` are the best among this step's *verified* answers, so the fastest
honest miner on both counts earns 1 and each term lies in (0, 1]. Speed never rescues a failed
verification, and a cheater's speed never raises the bar for honest miners.

Each uid's score is an EMA of its rewards (``alpha`` in config); a uid not queried in a step keeps
its score. Weights are the scores normalised to sum 1. When every score is zero there is nothing
to reward: :func:`weights_from_scores` returns ``None`` and the validator skips setting weights
(and says so). Setting uniform weights instead would pay cheaters and absent miners the same as
honest ones, and burning to a fixed uid is a subnet-level policy this kit does not impose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from neurons.scoring.config import ScoringConfig

__all__ = ["Measurement", "WeightVector", "compute_rewards", "update_ema", "weights_from_scores"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One miner's answer this step, as the reward needs it."""

    uid: int
    verified: bool
    tokens_per_s: float | None = None
    """Completion tokens over the client-measured total time."""
    ttft_s: float | None = None
    """Client-measured time to first token."""


@dataclass(frozen=True, slots=True)
class WeightVector:
    """Normalised weights: ``uids[i]`` gets ``weights[i]``; weights are positive and sum to 1."""

    uids: tuple[int, ...]
    weights: tuple[float, ...]

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.uids, self.weights, strict=True))


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def compute_rewards(measurements: Sequence[Measurement], config: ScoringConfig) -> dict[int, float]:
    """Reward in [0, 1] for every measured uid (see the module docstring for the formula)."""
    honest = [m for m in measurements if m.verified and _usable(m.tokens_per_s) and _usable(m.ttft_s)]
    rewards = {m.uid: 0.0 for m in measurements}
    if not honest:
        return rewards
    best_tps = max(m.tokens_per_s for m in honest)  # type: ignore[type-var]
    best_ttft = min(m.ttft_s for m in honest)  # type: ignore[type-var]
    w_tps, w_ttft = config.speed_weight_tps, config.speed_weight_ttft
    for m in honest:
        speed = w_tps * (m.tokens_per_s / best_tps) + w_ttft * (best_ttft / m.ttft_s)  # type: ignore[operator]
        rewards[m.uid] = min(1.0, speed / (w_tps + w_ttft))
    return rewards


def update_ema(scores: Mapping[int, float], rewards: Mapping[int, float], alpha: float) -> dict[int, float]:
    """New scores: ``alpha * reward + (1 - alpha) * old`` for rewarded uids (old = 0 when new); others kept."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    out = dict(scores)
    for uid, reward in rewards.items():
        clean = reward if math.isfinite(reward) else 0.0
        out[uid] = alpha * min(max(clean, 0.0), 1.0) + (1.0 - alpha) * out.get(uid, 0.0)
    return out


def weights_from_scores(scores: Mapping[int, float]) -> WeightVector | None:
    """Scores normalised to sum 1 over uids with a positive score; ``None`` when no score is positive.

    Negative and non-finite scores count as zero; uids are returned in ascending order.
    """
    positive = {uid: s for uid, s in scores.items() if math.isfinite(s) and s > 0}
    total = math.fsum(positive.values())
    if not positive or total <= 0:
        return None
    uids = tuple(sorted(positive))
    return WeightVector(uids=uids, weights=tuple(positive[u] / total for u in uids))
