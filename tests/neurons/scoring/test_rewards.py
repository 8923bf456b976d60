"""Rewards, EMA and weights: the formula, the zero cases and the guards against bad numbers."""

from __future__ import annotations

import math

import pytest

from neurons.scoring import Measurement, ScoringConfig, compute_rewards, update_ema, weights_from_scores

CONFIG = ScoringConfig(speed_weight_tps=0.7, speed_weight_ttft=0.3)


def test_fastest_honest_miner_gets_one_and_others_are_relative_to_it() -> None:
    rewards = compute_rewards(
        [
            Measurement(uid=1, verified=True, tokens_per_s=100.0, ttft_s=0.1),
            Measurement(uid=2, verified=True, tokens_per_s=50.0, ttft_s=0.4),
        ],
        CONFIG,
    )
    assert rewards[1] == pytest.approx(1.0)
    assert rewards[2] == pytest.approx(0.7 * 0.5 + 0.3 * 0.25)


def test_unverified_and_failed_answers_earn_zero_and_do_not_set_the_bar() -> None:
    rewards = compute_rewards(
        [
            Measurement(uid=1, verified=True, tokens_per_s=10.0, ttft_s=1.0),
            Measurement(uid=2, verified=False, tokens_per_s=1e6, ttft_s=1e-6),  # a fast cheater
            Measurement(uid=3, verified=False),  # a timeout
        ],
        CONFIG,
    )
    assert rewards == {1: pytest.approx(1.0), 2: 0.0, 3: 0.0}


def test_no_verified_answer_means_all_zero() -> None:
    assert compute_rewards([Measurement(uid=4, verified=False)], CONFIG) == {4: 0.0}
    assert compute_rewards([], CONFIG) == {}


def test_ema_folds_rewards_in_and_keeps_unqueried_uids() -> None:
    scores = update_ema({1: 0.5, 2: 0.8}, {1: 1.0, 3: 1.0}, alpha=0.1)
    assert scores == {1: pytest.approx(0.55), 2: 0.8, 3: pytest.approx(0.1)}


def test_ema_clamps_bad_rewards_and_rejects_bad_alpha() -> None:
    assert update_ema({}, {1: math.nan, 2: 5.0, 3: -1.0}, alpha=0.5) == {1: 0.0, 2: 0.5, 3: 0.0}
    with pytest.raises(ValueError, match="alpha"):
        update_ema({}, {}, alpha=0.0)


def test_weights_are_normalised_over_positive_scores() -> None:
    vector = weights_from_scores({3: 0.3, 1: 0.1, 2: 0.0, 4: -1.0, 5: math.inf})
    assert vector is not None
    assert vector.uids == (1, 3)
    assert vector.weights == (pytest.approx(0.25), pytest.approx(0.75))
    assert math.fsum(vector.weights) == pytest.approx(1.0)


def test_all_zero_scores_give_no_weights_instead_of_dividing_by_zero() -> None:
    assert weights_from_scores({1: 0.0, 2: 0.0}) is None
    assert weights_from_scores({}) is None


def test_config_rejects_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="min_new_tokens"):
        ScoringConfig(min_new_tokens=10, max_new_tokens=5)
    with pytest.raises(ValueError, match="speed_weight"):
        ScoringConfig(speed_weight_tps=0.0, speed_weight_ttft=0.0)
    with pytest.raises(ValueError):
        ScoringConfig(unknown_threshold=1)
