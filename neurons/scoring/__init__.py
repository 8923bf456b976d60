"""Verification, rewards, EMA and weights: everything between a miner's answer and a weight vector."""

from neurons.scoring.answer import LocalAnswer, answer_locally, verify_answer
from neurons.scoring.config import ScoringConfig
from neurons.scoring.rewards import Measurement, WeightVector, compute_rewards, update_ema, weights_from_scores
from neurons.scoring.verify import (
    Answer,
    Verdict,
    VerdictReason,
    buffered_stream,
    check_scored,
    precheck,
    required_top_k,
    scaled_mass_above,
    verify,
)

__all__ = [
    "Answer",
    "LocalAnswer",
    "Measurement",
    "ScoringConfig",
    "Verdict",
    "VerdictReason",
    "WeightVector",
    "answer_locally",
    "buffered_stream",
    "check_scored",
    "compute_rewards",
    "precheck",
    "required_top_k",
    "scaled_mass_above",
    "update_ema",
    "verify",
    "verify_answer",
    "weights_from_scores",
]
