"""``ScoringConfig``: every threshold and weight the validator's verification and scoring use.

One frozen pydantic model, composed into the validator's settings as ``scoring``. The default
thresholds were calibrated on the transformers engine (fp32, tiny model and SmolLM2) with room for
a miner running vLLM in bf16; BENCHMARKS.md ("Verification and scoring") gives the measurements.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ScoringConfig"]


class ScoringConfig(BaseModel):
    """Verification thresholds, reward weights, EMA and challenge sizes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- verification -------------------------------------------------------------------------
    score_top_k: int = Field(default=20, ge=1, le=100)
    """Alternatives per position the validator asks ``Engine.score`` for (vLLM caps at 20 by default)."""
    max_logprob_error_nats: float = Field(default=1.0, gt=0.0)
    """Largest |claimed - validator| raw logprob allowed at any one position. Honest fp32 same-engine
    differences are ~1e-5; a bf16 miner against an fp32 validator measured up to 0.32 (SmolLM2), as
    published for vLLM bf16 against fp32 references."""
    mean_logprob_error_nats: float = Field(default=0.2, gt=0.0)
    """Largest mean |claimed - validator| raw logprob over the completion. A bf16 SmolLM2 miner against
    an fp32 validator measured at most 0.07 per answer (0.32 at worst on one token)."""
    greedy_margin_nats: float = Field(default=0.5, ge=0.0)
    """At temperature 0 a token that is not the validator's argmax is accepted only if its logprob is
    within this many nats of the argmax's (a near-tie that another engine's numerics may flip)."""
    filter_margin_nats: float = Field(default=0.5, ge=0.0)
    """Slack for the top-k filter at temperature > 0: a token ranked beyond ``top_k`` is accepted if its
    logprob is within this many nats of the ``top_k``-th alternative's."""
    nucleus_slack: float = Field(default=0.08, ge=0.0, le=1.0)
    """Slack for the top-p filter: a sampled token fails only if the probability mass provably ranked
    above it (temperature-scaled lower bound) is at least ``top_p + nucleus_slack``. Honest bf16 miners
    measured at most 0.014 above ``top_p``; challenges keep ``top_p <= 0.9`` so the check can fire."""
    eos_avoidance_min_prob: float = Field(default=1e-6, gt=0.0, lt=1.0)
    """Fail a sampled completion when the chance of honestly skipping EOS at every position where the
    validator saw it likely (lower bound) falls below this."""
    eos_logprob_slack_nats: float = Field(default=0.25, ge=0.0)
    """Subtracted from the validator's EOS logprob before the EOS-avoidance bound, for another engine's
    numerics (bf16 errors on a near-certain token are ~1e-3 nats)."""
    check_prompt_tokens: bool = True
    """Require ``usage.prompt_tokens`` to equal the validator's own prompt length."""
    burst_min_tokens: int = Field(default=32, ge=2)
    """Streams shorter than this are not checked for end-of-stream bursts (too few tokens to judge)."""
    burst_min_total_s: float = Field(default=0.5, ge=0.0)
    """Streams faster than this are not checked for bursts (transport jitter dominates, nothing to gain)."""
    burst_head_fraction: float = Field(default=0.05, gt=0.0, lt=1.0)
    """The head of the stream: this fraction of the tokens (at least two)."""
    burst_late_fraction: float = Field(default=0.85, gt=0.0, le=1.0)
    """A stream is buffered if its head arrives after this fraction of the span from first to last token."""

    # --- rewards --------------------------------------------------------------------------------
    speed_weight_tps: float = Field(default=0.7, ge=0.0)
    """Weight of relative tokens/s in the speed score."""
    speed_weight_ttft: float = Field(default=0.3, ge=0.0)
    """Weight of relative time-to-first-token in the speed score."""
    ema_alpha: float = Field(default=0.1, gt=0.0, le=1.0)
    """EMA update: ``ema = alpha * reward + (1 - alpha) * ema``."""

    # --- challenges -----------------------------------------------------------------------------
    max_new_tokens: int = Field(default=96, ge=1, le=4096)
    """Largest ``max_tokens`` a challenge asks for."""
    min_new_tokens: int = Field(default=32, ge=1)
    """Smallest ``max_tokens`` a challenge asks for. Verification costs one prefill over prompt and
    completion, so short completions make it relatively dearer (0.12x of generation at 32 tokens,
    0.08x at 64 on SmolLM2); 32 is also the shortest stream judged for buffering."""
    greedy_fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    """Share of challenges at temperature 0."""
    sample_size: int = Field(default=8, ge=1)
    """Miners queried per step."""
    table_rows_per_step: int = Field(default=4, ge=0)
    """Challenges and answers logged to the telemetry table per step."""

    @model_validator(mode="after")
    def _consistent(self) -> ScoringConfig:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) exceeds max_new_tokens ({self.max_new_tokens})")
        if self.speed_weight_tps + self.speed_weight_ttft <= 0:
            raise ValueError("speed_weight_tps + speed_weight_ttft must be positive")
        return self
