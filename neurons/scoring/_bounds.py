"""Probability bounds behind the filter checks: what the validator can prove from the top alternatives.

``Engine.score`` returns each position's raw logprob, rank and top-k alternatives, not the whole
distribution, so the temperature-scaled probabilities that top-p and EOS checks need are bounded
rather than computed. Every bound errs on the miner's side: it can only make a check more lenient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from neurons.engines.base import ScoredPosition

__all__ = ["scaled_mass_above", "scaled_norm_upper"]


def scaled_norm_upper(top_logprobs: Sequence[float], a: float, vocab_size: int) -> float:
    """Upper bound on ``Z = sum_j p_j**a`` over the vocabulary, from the top alternatives' raw logprobs."""
    known = math.fsum(math.exp(a * lp) for lp in top_logprobs)
    rest_mass = max(0.0, 1.0 - math.fsum(math.exp(lp) for lp in top_logprobs))
    p_min = math.exp(min(top_logprobs))
    unseen = max(0, vocab_size - len(top_logprobs))
    if a >= 1.0:
        rest = rest_mass * p_min ** (a - 1.0)
    else:
        rest = min(unseen ** (1.0 - a) * rest_mass**a, unseen * p_min**a)
    return known + rest


def scaled_mass_above(pos: ScoredPosition, temperature: float, vocab_size: int, margin_nats: float) -> float:
    """Lower bound on the temperature-scaled probability mass ranked above ``pos.token_id``.

    Counts the alternatives whose raw logprob exceeds the token's by more than ``margin_nats`` (so a
    near-tie that another engine may order differently never counts), divided by an upper bound on
    the scaled normaliser ``Z = sum_j p_j**(1/T)``: the known alternatives exactly, the unseen rest
    (raw mass ``R``, each at most the smallest known ``p_min``) at most ``R * p_min**(1/T - 1)`` when
    ``T <= 1``, or ``min(N**(1 - 1/T) * R**(1/T), N * p_min**(1/T))`` over ``N`` unseen tokens when ``T > 1``.
    Top-k filtering before top-p only renormalises over fewer tokens, which can only raise the mass.
    """
    if not pos.top_logprobs or temperature <= 0:
        return 0.0
    a = 1.0 / temperature
    above = math.fsum(math.exp(a * lp) for lp in pos.top_logprobs if lp > pos.logprob + margin_nats)
    if above == 0.0:
        return 0.0
    return min(1.0, above / scaled_norm_upper(pos.top_logprobs, a, vocab_size))
