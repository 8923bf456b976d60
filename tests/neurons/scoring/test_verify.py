"""Verification rules on hand-built answers and teacher-forced positions (no model needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurons.engines.base import ScoredPosition
from neurons.scoring import ScoringConfig, VerdictReason, buffered_stream, scaled_mass_above, verify
from protocol.synapses import ChatMessage, FinishReason, InferenceRequest, InferenceResponse, Usage

EOS = 2
VOCAB = 100
PROMPT = [10, 11, 12]
CONFIG = ScoringConfig()


def decode(ids: Sequence[int]) -> str:
    return "".join("</s>" if t == EOS else f"<{t}>" for t in ids)


@dataclass(frozen=True)
class Answer:
    response: InferenceResponse | None
    chunk_arrivals: tuple[tuple[float, int], ...] = ()


def request(**overrides) -> InferenceRequest:
    fields = {"messages": [ChatMessage(role="user", content="hi")], "max_tokens": 4, "stream": True} | overrides
    return InferenceRequest(**fields)


def position(token: int, logprob: float, rank: int = 1, top: Sequence[tuple[int, float]] = ()) -> ScoredPosition:
    top = tuple(top) or ((token, logprob),)
    return ScoredPosition(token, logprob, rank, tuple(t for t, _ in top), tuple(lp for _, lp in top))


def answer(
    ids: list[int],
    logprobs: list[float],
    finish: FinishReason,
    *,
    text: str | None = None,
    prompt_tokens: int = len(PROMPT),
    completion_tokens: int | None = None,
    arrivals: tuple[tuple[float, int], ...] = (),
) -> Answer:
    response = InferenceResponse(
        token_ids=ids,
        logprobs=logprobs,
        ranks=[1] * len(ids),
        text=decode(ids) if text is None else text,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=prompt_tokens, completion_tokens=len(ids) if completion_tokens is None else completion_tokens
        ),
    )
    return Answer(response, arrivals)


def run(req: InferenceRequest, ans: Answer, positions: Sequence[ScoredPosition], config: ScoringConfig = CONFIG):
    return verify(req, PROMPT, ans, positions, eos_ids={EOS}, vocab_size=VOCAB, decode=decode, config=config)


# An honest greedy answer of four tokens ending at max_tokens, and its teacher-forced view.
IDS = [5, 6, 7, 8]
LPS = [-0.1, -0.2, -0.3, -0.4]
POSITIONS = [position(t, lp) for t, lp in zip(IDS, LPS, strict=True)]


def test_honest_greedy_answer_is_verified_with_its_statistics() -> None:
    claimed = [lp + 1e-4 for lp in LPS]
    verdict = run(request(), answer(IDS, claimed, FinishReason.LENGTH), POSITIONS)
    assert verdict.verified and verdict.reason is VerdictReason.OK
    assert verdict.n_tokens == 4 and verdict.worst_rank == 1
    assert verdict.max_logprob_error == pytest.approx(1e-4, rel=1e-3)


def test_honest_answer_ending_with_eos_is_verified_with_or_without_eos_text() -> None:
    ids, lps = [5, 6, EOS], [-0.1, -0.2, -0.3]
    positions = [position(t, lp) for t, lp in zip(ids, lps, strict=True)]
    for text in (decode(ids), decode(ids[:-1])):
        assert run(request(), answer(ids, lps, FinishReason.STOP, text=text), positions).verified


def test_missing_response_fails() -> None:
    assert run(request(), Answer(None), []).reason is VerdictReason.NO_RESPONSE


@pytest.mark.parametrize(
    ("ans", "reason"),
    [
        (answer([], [], FinishReason.STOP), VerdictReason.EMPTY),
        (answer([5] * 5, [-0.1] * 5, FinishReason.LENGTH), VerdictReason.TOO_LONG),
        (answer([5, 6, 700, 8], LPS, FinishReason.LENGTH), VerdictReason.OUT_OF_VOCAB),
        (answer(IDS, LPS, FinishReason.LENGTH, completion_tokens=9), VerdictReason.USAGE_MISMATCH),
        (answer(IDS, LPS, FinishReason.LENGTH, prompt_tokens=1), VerdictReason.USAGE_MISMATCH),
        (answer(IDS, LPS, FinishReason.STOP), VerdictReason.FINISH_MISMATCH),  # "stop" without EOS
        (answer([5, 6], LPS[:2], FinishReason.LENGTH), VerdictReason.FINISH_MISMATCH),  # early end
        (answer([5, EOS, 7, 8], LPS, FinishReason.LENGTH), VerdictReason.FINISH_MISMATCH),  # EOS inside
        (answer([5, 6, 7, EOS], LPS, FinishReason.LENGTH), VerdictReason.FINISH_MISMATCH),  # EOS but "length"
        (answer(IDS, LPS, FinishReason.LENGTH, text="<5><6><7><9>"), VerdictReason.TEXT_MISMATCH),
    ],
)
def test_structural_cheats_fail_before_scoring(ans: Answer, reason: VerdictReason) -> None:
    verdict = run(request(), ans, [])
    assert not verdict.verified
    assert verdict.reason is reason, verdict.detail


def test_greedy_token_that_is_not_the_argmax_fails_with_its_rank() -> None:
    positions = list(POSITIONS)
    positions[2] = position(7, -3.0, rank=4, top=[(9, -0.1), (3, -1.0), (4, -2.0), (7, -3.0)])
    claimed = [p.logprob for p in positions]
    verdict = run(request(), answer(IDS, claimed, FinishReason.LENGTH), positions)
    assert verdict.reason is VerdictReason.RANK
    assert verdict.position == 2 and verdict.worst_rank == 4


def test_greedy_near_tie_is_accepted_because_another_engine_may_break_it_differently() -> None:
    positions = list(POSITIONS)
    positions[1] = position(6, -0.75, rank=2, top=[(9, -0.7), (6, -0.75)])
    claimed = [p.logprob for p in positions]
    assert run(request(), answer(IDS, claimed, FinishReason.LENGTH), positions).verified


def test_greedy_answer_that_skips_an_eos_argmax_is_reported_as_eos_avoidance() -> None:
    positions = list(POSITIONS)
    positions[3] = position(8, -4.0, rank=2, top=[(EOS, -0.05), (8, -4.0)])
    claimed = [p.logprob for p in positions]
    assert run(request(), answer(IDS, claimed, FinishReason.LENGTH), positions).reason is VerdictReason.EOS_AVOIDED


def test_invented_logprobs_fail() -> None:
    claimed = [-0.1, -0.2, -1.9, -0.4]  # one position 1.6 nats off
    verdict = run(request(), answer(IDS, claimed, FinishReason.LENGTH), POSITIONS)
    assert verdict.reason is VerdictReason.LOGPROB_MISMATCH and verdict.position == 2
    small_but_systematic = [lp - 0.3 for lp in LPS]
    verdict = run(request(), answer(IDS, small_but_systematic, FinishReason.LENGTH), POSITIONS)
    assert verdict.reason is VerdictReason.LOGPROB_MISMATCH and verdict.mean_logprob_error == pytest.approx(0.3)


def test_sampled_token_outside_top_k_fails_unless_within_the_margin_of_the_kth() -> None:
    req = request(temperature=0.8, top_k=2)
    top = [(9, -0.5), (3, -1.0), (7, -4.0)]
    positions = list(POSITIONS)
    positions[2] = position(7, -4.0, rank=3, top=top)
    claimed = [p.logprob for p in positions]
    verdict = run(req, answer(IDS, claimed, FinishReason.LENGTH), positions)
    assert verdict.reason is VerdictReason.FILTER_VIOLATION and verdict.position == 2
    positions[2] = position(7, -1.2, rank=3, top=[(9, -0.5), (3, -1.0), (7, -1.2)])
    claimed = [p.logprob for p in positions]
    assert run(req, answer(IDS, claimed, FinishReason.LENGTH), positions).verified


def test_sampled_token_outside_the_nucleus_fails() -> None:
    req = request(temperature=1.0, top_p=0.5)
    positions = list(POSITIONS)
    positions[0] = position(5, math.log(0.05), rank=2, top=[(9, math.log(0.9)), (5, math.log(0.05))])
    claimed = [p.logprob for p in positions]
    assert run(req, answer(IDS, claimed, FinishReason.LENGTH), positions).reason is VerdictReason.FILTER_VIOLATION
    # The same token is fine without the top-p filter (top_p = 1 keeps the whole vocabulary).
    assert run(request(temperature=1.0), answer(IDS, claimed, FinishReason.LENGTH), positions).verified


def test_sampled_answer_that_never_takes_a_near_certain_eos_fails() -> None:
    ids = [5] * 20
    req = request(temperature=0.7, max_tokens=len(ids))
    likely_eos = [position(5, -6.0, rank=2, top=[(EOS, -0.001), (5, -6.0)])] * len(ids)
    claimed = [p.logprob for p in likely_eos]
    assert run(req, answer(ids, claimed, FinishReason.LENGTH), likely_eos).reason is VerdictReason.EOS_AVOIDED
    # A few positions with a likely EOS are bad luck an honest miner can have.
    few = likely_eos[:3] + [position(5, -0.1)] * (len(ids) - 3)
    claimed = [p.logprob for p in few]
    assert run(req, answer(ids, claimed, FinishReason.LENGTH), few).verified


def test_mismatched_positions_are_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="do not match"):
        run(request(), answer(IDS, LPS, FinishReason.LENGTH), POSITIONS[:3])


def _stream(times: Sequence[float]) -> tuple[tuple[float, int], ...]:
    return tuple((t, 1) for t in times)


def test_a_stream_flushed_at_the_end_is_buffered_and_a_steady_one_is_not() -> None:
    steady = _stream([0.5 + 0.02 * i for i in range(40)])
    assert not buffered_stream(steady, CONFIG)
    slow_prefill = _stream([3.0 + 0.001 * i for i in range(40)])  # long TTFT, then a real stream
    assert not buffered_stream(slow_prefill, CONFIG)
    first_then_flush = _stream([0.1] + [2.0] * 39)
    assert buffered_stream(first_then_flush, CONFIG)
    all_at_once = ((2.0, 40),)
    assert buffered_stream(all_at_once, CONFIG)
    ids = [5] * 40
    ans = answer(ids, [-0.1] * 40, FinishReason.LENGTH, arrivals=first_then_flush)
    verdict = run(request(max_tokens=40), ans, [position(5, -0.1)] * 40)
    assert verdict.reason is VerdictReason.BUFFERED_STREAM


def test_short_or_fast_streams_are_not_judged_for_bursts() -> None:
    assert not buffered_stream(((2.0, 10),), CONFIG)  # too few tokens
    assert not buffered_stream(((0.2, 40),), CONFIG)  # too fast to matter


def test_low_temperature_nucleus_bound_uses_the_scaled_normaliser() -> None:
    # Raw top-3 of 0.34/0.21/0.18; at T = 0.36 these dominate the scaled distribution, so a token at
    # logprob -11 has nearly all the scaled mass above it although p**(1/T) alone sums to only ~0.07.
    top = [(9, math.log(0.34)), (3, math.log(0.21)), (4, math.log(0.18)), (5, -11.0)]
    pos = position(5, -11.0, rank=124, top=top)
    above = scaled_mass_above(pos, 0.36, VOCAB, CONFIG.filter_margin_nats)
    assert 0.97 < above <= 1.0
    req = request(temperature=0.36, top_p=0.85)
    positions = [pos, *POSITIONS[1:]]
    claimed = [p.logprob for p in positions]
    assert run(req, answer(IDS, claimed, FinishReason.LENGTH), positions).reason is VerdictReason.FILTER_VIOLATION


def test_scaled_mass_above_is_a_lower_bound_at_high_temperature() -> None:
    # Exact scaled mass for a fully known distribution, compared with the bound from its top-2.
    probs = [0.5, 0.3] + [0.2 / 98] * 98
    temperature = 1.5
    scaled = [p ** (1 / temperature) for p in probs]
    exact_above_third = (scaled[0] + scaled[1]) / sum(scaled)
    top = [(0, math.log(probs[0])), (1, math.log(probs[1]))]
    bound = scaled_mass_above(position(2, math.log(probs[2]), rank=3, top=top), temperature, 100, 0.0)
    assert 0.0 < bound <= exact_above_third + 1e-12
    assert scaled_mass_above(position(0, math.log(0.5), top=top), temperature, 100, 0.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    logits=st.lists(st.floats(-8.0, 8.0), min_size=5, max_size=60),
    temperature=st.floats(0.2, 2.0),
    k=st.integers(1, 20),
    token_rank=st.integers(1, 60),
)
def test_scaled_mass_above_never_exceeds_the_exact_mass(logits, temperature, k, token_rank) -> None:
    """The filter check may only fail tokens that provably lie outside the nucleus."""
    z = math.log(math.fsum(math.exp(x) for x in logits))
    logprobs = sorted((x - z for x in logits), reverse=True)
    token_rank = min(token_rank, len(logprobs))
    token_lp = logprobs[token_rank - 1]
    scaled = [math.exp(lp / temperature) for lp in logprobs]
    exact = math.fsum(s for s, lp in zip(scaled, logprobs, strict=True) if lp > token_lp) / math.fsum(scaled)
    top = [(i, lp) for i, lp in enumerate(logprobs[:k])]
    pos = position(token_rank - 1, token_lp, rank=token_rank, top=top)
    assert scaled_mass_above(pos, temperature, len(logprobs), 0.0) <= exact + 1e-9
