"""Prometheus metrics of the validator, registered on a registry the caller passes in.

The caller owns the registry (and its HTTP exposition), so tests and several validators in one
process never collide on prometheus-client's global default registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ValidatorMetrics"]

_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


class ValidatorMetrics:
    """The validator's gauges, counters and histograms (names prefixed ``axongate_validator_``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.steps = Counter("axongate_validator_steps", "Validator steps completed.", registry=registry)
        self.miner_score = Gauge(
            "axongate_validator_miner_score", "EMA score per uid, in [0, 1].", ["uid"], registry=registry
        )
        self.miner_weight = Gauge(
            "axongate_validator_miner_weight", "Normalised weight per uid last computed.", ["uid"], registry=registry
        )
        self.blocks_since_weights = Gauge(
            "axongate_validator_blocks_since_weights_update",
            "Blocks since this validator's weights were last set on chain (alert when it grows).",
            registry=registry,
        )
        self.verification_failures = Counter(
            "axongate_validator_verification_failures",
            "Answers that failed verification, by reason.",
            ["reason"],
            registry=registry,
        )
        self.query_latency = Histogram(
            "axongate_validator_query_latency_seconds",
            "Client-measured query latency: time to first token and total time.",
            ["phase"],
            buckets=_LATENCY_BUCKETS_S,
            registry=registry,
        )

    def observe_query(self, *, ttft_s: float | None, total_s: float | None) -> None:
        """Record one query's client-side timings (missing values are skipped)."""
        if ttft_s is not None:
            self.query_latency.labels(phase="ttft").observe(ttft_s)
        if total_s is not None:
            self.query_latency.labels(phase="total").observe(total_s)

    def observe_verdict(self, reason: str, verified: bool) -> None:
        if not verified:
            self.verification_failures.labels(reason=reason).inc()

    def set_scores(self, scores: dict[int, float], weights: dict[int, float]) -> None:
        """Publish the current scores and weights (uids absent from ``weights`` get 0)."""
        for uid, score in scores.items():
            self.miner_score.labels(uid=str(uid)).set(score)
            self.miner_weight.labels(uid=str(uid)).set(weights.get(uid, 0.0))
