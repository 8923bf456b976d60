"""Verification of one miner answer by teacher forcing: is it what the model would have produced?

The validator re-encodes the challenge with its own engine (``encode_chat``), teacher-forces the
miner's token ids through its own copy of the model (``Engine.score``), and hands both to
:func:`verify`. Checks, cheapest first; the first failure decides the :class:`Verdict`:

1. Shape: a response exists, has at least one and at most ``max_tokens`` tokens, every id is in the
   vocabulary, ``usage`` matches (completion tokens; prompt tokens against the validator's own prompt).
2. Ending: ``finish_reason == "stop"`` iff the last token is EOS; no EOS before the end;
   ``"length"`` iff exactly ``max_tokens`` tokens (an early end without EOS fails).
3. Text: the validator's ``decode`` of the ids equals the returned text (optionally without the
   trailing EOS's text, which engines usually omit).
4. Streaming: tokens did not arrive in one burst at the end (see :func:`buffered_stream`).
5. Ranks and filters, from the validator's teacher-forced view:
   - temperature 0: every token is the argmax, unless within ``greedy_margin_nats`` of it (a near
     tie another engine may break differently). Skipping an EOS argmax is reported as EOS avoidance.
   - temperature > 0: a token ranked beyond ``top_k`` (beyond ``filter_margin_nats`` of the k-th) was
     not sampled; a token with provably ``>= top_p + nucleus_slack`` of the temperature-scaled mass
     ranked above it was not sampled (a lower bound from the top alternatives, ignoring those within
     ``filter_margin_nats`` of the token: see :func:`scaled_mass_above`).
6. Logprobs: each claimed raw logprob within ``max_logprob_error_nats`` of the validator's, and the
   mean error within ``mean_logprob_error_nats``.
7. EOS avoidance at temperature > 0: the probability of honestly not sampling EOS at every
   position must be at least ``eos_avoidance_min_prob``. It is over-estimated (each ``p_T(EOS)`` is
   under-estimated from the validator's EOS logprob minus ``eos_logprob_slack_nats``), so an honest
   miner on another engine fails with at most that probability.

Thresholds live in :class:`~neurons.scoring.config.ScoringConfig`. Calibration (BENCHMARKS.md,
``scripts/bench/verify.py calibrate``), honest answers on the transformers engine, validator fp32:

================================  ==============  ==============  ===========
measured (worst case)             tiny, bf16      SmolLM2, bf16   threshold
                                  miner, 300      miner, 60
================================  ==============  ==============  ===========
|dlogprob| on one token           0.081           0.317           1.0
mean |dlogprob| of one answer     0.022           0.069           0.2
greedy gap to argmax (flips)      0.068           0.064           0.5
scaled mass above / top_p         1.015           0.972           (top_p + 0.08) / top_p
================================  ==============  ==============  ===========

fp32 miners differ from the validator by at most 1.5e-5 nats and never flip an argmax. No honest
answer of the 720 failed any check; published vLLM bf16 vs fp32 figures (worst 0.32 nats) match
the bf16 column, so the thresholds leave roughly 3x room for a vLLM miner.
Verification never raises for anything a miner sends; it raises ``ValueError`` only when the caller's
own inputs disagree (teacher-forced positions that do not match the response's tokens).
:func:`neurons.scoring.answer.verify_answer` runs the whole sequence against an engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from neurons.engines.base import ScoredPosition
from neurons.scoring._bounds import scaled_mass_above, scaled_norm_upper
from neurons.scoring.config import ScoringConfig
from protocol.synapses import FinishReason, InferenceRequest, InferenceResponse

__all__ = [
    "Answer",
    "Verdict",
    "VerdictReason",
    "buffered_stream",
    "check_scored",
    "precheck",
    "required_top_k",
    "scaled_mass_above",
    "verify",
]


class VerdictReason(StrEnum):
    """Why an answer passed or failed; the first failing check decides."""

    OK = "ok"
    NO_RESPONSE = "no_response"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    OUT_OF_VOCAB = "out_of_vocab"
    USAGE_MISMATCH = "usage_mismatch"
    FINISH_MISMATCH = "finish_mismatch"
    TEXT_MISMATCH = "text_mismatch"
    BUFFERED_STREAM = "buffered_stream"
    RANK = "rank"
    FILTER_VIOLATION = "filter_violation"
    EOS_AVOIDED = "eos_avoided"
    LOGPROB_MISMATCH = "logprob_mismatch"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :func:`verify`, with the statistics behind it (for logs and calibration)."""

    verified: bool
    reason: VerdictReason
    detail: str = ""
    n_tokens: int = 0
    max_logprob_error: float = 0.0
    """Largest |claimed - validator| raw logprob (nats); 0 when not reached."""
    mean_logprob_error: float = 0.0
    worst_rank: int = 0
    """Largest validator rank among the completion tokens; 0 when not reached."""
    position: int = -1
    """Completion position of the failure; -1 when none or not position-specific."""


class Answer(Protocol):
    """What :func:`verify` reads from a query result (``protocol.client.QueryResult`` fits)."""

    @property
    def response(self) -> InferenceResponse | None: ...

    @property
    def chunk_arrivals(self) -> Sequence[tuple[float, int]]: ...


def required_top_k(request: InferenceRequest, config: ScoringConfig) -> int:
    """The ``k`` to pass to ``Engine.score`` so that the top-k filter check can see the k-th alternative."""
    return max(config.score_top_k, request.top_k if request.temperature > 0 else 0)


def verify(
    challenge: InferenceRequest,
    prompt_ids: Sequence[int],
    result: Answer,
    positions: Sequence[ScoredPosition],
    *,
    eos_ids: Collection[int],
    vocab_size: int,
    decode: Callable[[Sequence[int]], str],
    config: ScoringConfig,
) -> Verdict:
    """Check one answer against the validator's teacher-forced ``positions`` (see module docstring).

    Equivalent to :func:`precheck` followed, when that passes, by :func:`check_scored`.
    """
    failed = precheck(
        challenge, prompt_ids, result, eos_ids=eos_ids, vocab_size=vocab_size, decode=decode, config=config
    )
    response = result.response
    if failed is not None or response is None:
        return failed or Verdict(False, VerdictReason.NO_RESPONSE, "no response")
    return check_scored(challenge, response, positions, eos_ids=eos_ids, vocab_size=vocab_size, config=config)


def precheck(
    challenge: InferenceRequest,
    prompt_ids: Sequence[int],
    result: Answer,
    *,
    eos_ids: Collection[int],
    vocab_size: int,
    decode: Callable[[Sequence[int]], str],
    config: ScoringConfig,
) -> Verdict | None:
    """Checks 1-4 (shape, ending, text, streaming), which need no model; the failing verdict or ``None``.

    Run it before ``Engine.score``: an answer that fails it is not worth a forward pass, and one
    with out-of-vocabulary ids could not be scored at all.
    """
    response = result.response
    if response is None:
        return Verdict(False, VerdictReason.NO_RESPONSE, "no response")
    shape = _check_shape(challenge, prompt_ids, response, eos_ids=eos_ids, vocab_size=vocab_size, config=config)
    if shape is not None:
        return shape
    text = _check_text(response, eos_ids=eos_ids, decode=decode)
    if text is not None:
        return text
    if buffered_stream(result.chunk_arrivals, config):
        n = len(response.token_ids)
        return Verdict(False, VerdictReason.BUFFERED_STREAM, "the head of the stream arrived at its very end", n)
    return None


def check_scored(
    challenge: InferenceRequest,
    response: InferenceResponse,
    positions: Sequence[ScoredPosition],
    *,
    eos_ids: Collection[int],
    vocab_size: int,
    config: ScoringConfig,
) -> Verdict:
    """Checks 5-7 (ranks and filters, logprobs, EOS avoidance) on a response that passed :func:`precheck`.

    Raises ``ValueError`` if ``positions`` do not match the response's token ids (a caller bug).
    """
    ids = response.token_ids
    n = len(ids)
    if n == 0 or len(positions) != n or any(p.token_id != t for p, t in zip(positions, ids, strict=False)):
        raise ValueError(f"teacher-forced positions ({len(positions)}) do not match the response's {n} token ids")

    errors = [abs(claimed - p.logprob) for claimed, p in zip(response.logprobs, positions, strict=True)]
    stats = {
        "n_tokens": n,
        "max_logprob_error": max(errors),
        "mean_logprob_error": math.fsum(errors) / n,
        "worst_rank": max(p.rank for p in positions),
    }
    ranked = _check_ranks(challenge, positions, eos_ids=eos_ids, vocab_size=vocab_size, config=config)
    if ranked is not None:
        reason, detail, where = ranked
        return Verdict(False, reason, detail, position=where, **stats)
    worst = max(range(n), key=errors.__getitem__)
    if errors[worst] > config.max_logprob_error_nats:
        detail = (
            f"position {worst}: claimed logprob {response.logprobs[worst]:.4f}, "
            f"validator {positions[worst].logprob:.4f} (tolerance {config.max_logprob_error_nats})"
        )
        return Verdict(False, VerdictReason.LOGPROB_MISMATCH, detail, position=worst, **stats)
    if stats["mean_logprob_error"] > config.mean_logprob_error_nats:
        detail = f"mean logprob error {stats['mean_logprob_error']:.4f} > {config.mean_logprob_error_nats}"
        return Verdict(False, VerdictReason.LOGPROB_MISMATCH, detail, **stats)
    avoided = _eos_avoidance_log_prob(challenge, positions, eos_ids=eos_ids, vocab_size=vocab_size, config=config)
    if avoided < math.log(config.eos_avoidance_min_prob):
        detail = f"honest chance of never sampling a likely EOS is below e^{avoided:.1f}"
        return Verdict(False, VerdictReason.EOS_AVOIDED, detail, **stats)
    return Verdict(True, VerdictReason.OK, "", **stats)


def _check_shape(
    challenge: InferenceRequest,
    prompt_ids: Sequence[int],
    response: InferenceResponse,
    *,
    eos_ids: Collection[int],
    vocab_size: int,
    config: ScoringConfig,
) -> Verdict | None:
    ids = response.token_ids
    n = len(ids)
    if n == 0:
        return Verdict(False, VerdictReason.EMPTY, "no completion tokens")
    if n > challenge.max_tokens:
        return Verdict(False, VerdictReason.TOO_LONG, f"{n} tokens > max_tokens {challenge.max_tokens}", n)
    bad = next((i for i, t in enumerate(ids) if t >= vocab_size), None)
    if bad is not None:
        return Verdict(
            False, VerdictReason.OUT_OF_VOCAB, f"token id {ids[bad]} >= vocab size {vocab_size}", n, position=bad
        )
    usage = response.usage
    if usage.completion_tokens != n:
        return Verdict(
            False, VerdictReason.USAGE_MISMATCH, f"usage.completion_tokens {usage.completion_tokens} != {n}", n
        )
    if config.check_prompt_tokens and usage.prompt_tokens != len(prompt_ids):
        detail = f"usage.prompt_tokens {usage.prompt_tokens} != validator's prompt length {len(prompt_ids)}"
        return Verdict(False, VerdictReason.USAGE_MISMATCH, detail, n)
    early_eos = next((i for i, t in enumerate(ids[:-1]) if t in eos_ids), None)
    if early_eos is not None:
        return Verdict(
            False, VerdictReason.FINISH_MISMATCH, f"EOS at position {early_eos} before the end", n, position=early_eos
        )
    ends_with_eos = ids[-1] in eos_ids
    if response.finish_reason is FinishReason.STOP and not ends_with_eos:
        return Verdict(False, VerdictReason.FINISH_MISMATCH, "finish_reason 'stop' but the last token is not EOS", n)
    if response.finish_reason is FinishReason.LENGTH:
        if ends_with_eos:
            return Verdict(False, VerdictReason.FINISH_MISMATCH, "finish_reason 'length' but the last token is EOS", n)
        if n != challenge.max_tokens:
            detail = f"finish_reason 'length' after {n} tokens, max_tokens is {challenge.max_tokens}"
            return Verdict(False, VerdictReason.FINISH_MISMATCH, detail, n)
    return None


def _check_text(
    response: InferenceResponse, *, eos_ids: Collection[int], decode: Callable[[Sequence[int]], str]
) -> Verdict | None:
    ids = response.token_ids
    candidates = [decode(ids)]
    if ids[-1] in eos_ids:
        candidates.append(decode(ids[:-1]))
    if response.text in candidates:
        return None
    expected = candidates[-1]
    at = next(
        (i for i, (a, b) in enumerate(zip(response.text, expected, strict=False)) if a != b),
        min(len(response.text), len(expected)),
    )
    detail = f"text differs from the decoded tokens at character {at} ({len(response.text)} vs {len(expected)} chars)"
    return Verdict(False, VerdictReason.TEXT_MISMATCH, detail, len(ids))


def buffered_stream(chunk_arrivals: Sequence[tuple[float, int]], config: ScoringConfig) -> bool:
    """True when a stream's head arrived at its very end (tokens were held back and flushed at once).

    ``chunk_arrivals`` are ``(seconds since the request was sent, tokens in the chunk)``. The head is
    the first ``burst_head_fraction`` of the tokens (at least two, so the first token alone never is);
    it is late when it arrives after ``burst_late_fraction`` of the span from the first token to the
    last. Timing is measured from the first token, not the request, so a slow prefill is not mistaken
    for buffering. Streams with fewer than ``burst_min_tokens`` tokens or shorter than
    ``burst_min_total_s`` are not judged: transport jitter dominates them and there is nothing to gain.
    """
    arrivals = sorted((t, k) for t, k in chunk_arrivals if k > 0)
    total = sum(k for _, k in arrivals)
    if total < config.burst_min_tokens or not arrivals or arrivals[-1][0] < config.burst_min_total_s:
        return False
    head = max(2, math.ceil(config.burst_head_fraction * total))
    first_s, last_s = arrivals[0][0], arrivals[-1][0]
    seen = 0
    for t, k in arrivals:
        seen += k
        if seen >= head:
            head_s = t
            break
    span = last_s - first_s
    return span <= 0 or (head_s - first_s) > config.burst_late_fraction * span


def _check_ranks(
    challenge: InferenceRequest,
    positions: Sequence[ScoredPosition],
    *,
    eos_ids: Collection[int],
    vocab_size: int,
    config: ScoringConfig,
) -> tuple[VerdictReason, str, int] | None:
    temperature, top_k, top_p = challenge.temperature, challenge.top_k, challenge.top_p
    for i, pos in enumerate(positions):
        if temperature == 0:
            if pos.rank == 1:
                continue
            best = pos.top_logprobs[0] if pos.top_logprobs else math.inf
            if best - pos.logprob <= config.greedy_margin_nats:
                continue
            if pos.top_ids and pos.top_ids[0] in eos_ids:
                return VerdictReason.EOS_AVOIDED, f"position {i}: EOS was the argmax, got token {pos.token_id}", i
            detail = f"position {i}: greedy token has rank {pos.rank}, {best - pos.logprob:.3f} nats below the argmax"
            return VerdictReason.RANK, detail, i
        if top_k and pos.rank > top_k:
            if len(pos.top_logprobs) >= top_k:
                within = pos.top_logprobs[top_k - 1] - pos.logprob <= config.filter_margin_nats
            else:
                within = False
            if not within:
                return VerdictReason.FILTER_VIOLATION, f"position {i}: rank {pos.rank} outside top_k={top_k}", i
        if top_p < 1.0:
            above = scaled_mass_above(pos, temperature, vocab_size, config.filter_margin_nats)
            if above >= top_p + config.nucleus_slack:
                detail = f"position {i}: at least {above:.3f} of the mass ranks above the token, top_p={top_p}"
                return VerdictReason.FILTER_VIOLATION, detail, i
    return None


def _eos_avoidance_log_prob(
    challenge: InferenceRequest,
    positions: Sequence[ScoredPosition],
    *,
    eos_ids: Collection[int],
    vocab_size: int,
    config: ScoringConfig,
) -> float:
    """log of an upper bound on the chance that honest sampling skipped EOS wherever the miner did."""
    temperature, top_k, top_p = challenge.temperature, challenge.top_k, challenge.top_p
    if temperature == 0:
        return 0.0
    total = 0.0
    for pos in positions:
        if pos.token_id in eos_ids:
            continue
        for rank, (tid, lp) in enumerate(zip(pos.top_ids, pos.top_logprobs, strict=False), start=1):
            if tid not in eos_ids or (top_k and rank > top_k):
                continue
            a = 1.0 / temperature
            eos_lp = lp - config.eos_logprob_slack_nats  # room for another engine's numerics
            p_low = math.exp(a * eos_lp) / scaled_norm_upper(pos.top_logprobs, a, vocab_size)
            if p_low > 1.0 - top_p:  # otherwise EOS might lie outside the nucleus and be unsampleable
                total += math.log1p(-min(p_low, 1.0 - 1e-12))
    return total
