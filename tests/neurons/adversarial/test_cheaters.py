"""Each cheating miner, served by the real gateway, scores 0 with the right reason; honest peers still earn."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from adversarial_kit import CONFIG, build, challenges, query_and_verify

from neurons.adversaries import (
    BufferingEngine,
    CheatKind,
    InventedLogprobsEngine,
    RandomTokensEngine,
    ReplayEngine,
    SlowEngine,
    TruncatingEngine,
    TruncationMode,
    build_cheater,
    build_impostor_model,
)
from neurons.engines.base import Engine
from neurons.scoring import Measurement, VerdictReason, compute_rewards
from protocol.client import QueryErrorCode
from protocol.synapses import ChatMessage, InferenceRequest

N = 12
"""Challenges per cheater: greedy and sampled ones, several task kinds."""
MODEL_MISMATCH = {VerdictReason.RANK, VerdictReason.FILTER_VIOLATION, VerdictReason.LOGPROB_MISMATCH}


async def _reasons(serve, client, cheater: Engine, validator: Engine, seed: int, n: int = N) -> Counter[VerdictReason]:
    target = await serve(cheater)
    reasons: Counter[VerdictReason] = Counter()
    for request in challenges(seed, n):
        result, verdict = await query_and_verify(client, target, validator, request)
        reasons[verdict.reason] += 1
        rewards = compute_rewards([Measurement(0, verdict.verified, result.tokens_per_s, result.ttft_s)], CONFIG)
        assert verdict.verified or rewards == {0: 0.0}
    return reasons


@pytest.fixture(scope="module")
def impostor_engine(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory, model_home: Path) -> Iterator[Engine]:
    """A miner serving a different model: the tiny model's weights with noise, same tokenizer."""
    folder = build_impostor_model(tiny_dir, tmp_path_factory.mktemp("impostor") / "tiny-impostor", noise_std=0.02)
    engine = build(str(folder), model_home)
    yield engine
    asyncio.run(engine.aclose())


async def test_a_miner_serving_another_model_fails(serve, client, impostor_engine, validator_engine) -> None:
    reasons = await _reasons(serve, client, impostor_engine, validator_engine, seed=11)
    assert sum(reasons.values()) == N and set(reasons) <= MODEL_MISMATCH, reasons


async def test_random_tokens_with_true_logprobs_fail_on_ranks_and_filters(
    serve, client, miner_engine, validator_engine
):
    reasons = await _reasons(serve, client, RandomTokensEngine(miner_engine, seed=5), validator_engine, seed=12)
    assert sum(reasons.values()) == N and set(reasons) <= {VerdictReason.RANK, VerdictReason.FILTER_VIOLATION}, reasons
    assert VerdictReason.RANK in reasons and VerdictReason.FILTER_VIOLATION in reasons


async def test_invented_logprobs_fail(serve, client, miner_engine, validator_engine) -> None:
    reasons = await _reasons(serve, client, InventedLogprobsEngine(miner_engine), validator_engine, seed=13)
    assert reasons == {VerdictReason.LOGPROB_MISMATCH: N}


@pytest.mark.parametrize("mode", list(TruncationMode))
async def test_truncated_answers_fail(serve, client, miner_engine, validator_engine, mode: TruncationMode) -> None:
    cheater = TruncatingEngine(miner_engine, mode=mode, keep_fraction=0.5)
    reasons = await _reasons(serve, client, cheater, validator_engine, seed=14)
    assert reasons == {VerdictReason.FINISH_MISMATCH: N}


async def test_replayed_answers_fail_after_the_first(serve, client, miner_engine, validator_engine) -> None:
    target = await serve(ReplayEngine(miner_engine))
    verdicts = [(await query_and_verify(client, target, validator_engine, r))[1] for r in challenges(15, N)]
    assert verdicts[0].verified, "the first answer is genuinely generated"
    assert all(not v.verified for v in verdicts[1:]), [v.reason for v in verdicts]


async def test_a_miner_slower_than_the_deadline_times_out_and_earns_nothing(
    serve, client, miner_engine, validator_engine
):
    target = await serve(SlowEngine(miner_engine, delay_s=0.2))
    request = challenges(16, 1)[0]
    result, verdict = await query_and_verify(client, target, validator_engine, request, timeout_s=1.0)
    assert not result.ok and result.error is QueryErrorCode.TIMEOUT
    assert verdict.reason is VerdictReason.NO_RESPONSE
    assert compute_rewards([Measurement(3, verdict.verified, result.tokens_per_s, result.ttft_s)], CONFIG) == {3: 0.0}


async def test_a_stream_held_back_and_flushed_at_the_end_fails(serve, client, miner_engine, validator_engine) -> None:
    request = InferenceRequest(
        messages=[ChatMessage(role="user", content="Tell me a long story about a lighthouse.")],
        max_tokens=48,
        stream=True,
    )
    honest_target = await serve(miner_engine)
    honest, honest_verdict = await query_and_verify(client, honest_target, validator_engine, request)
    assert honest_verdict.verified and honest.response is not None
    assert len(honest.response.token_ids) >= CONFIG.burst_min_tokens, "precondition: a stream long enough to judge"

    target = await serve(BufferingEngine(miner_engine, hold_s=1.0))
    result, verdict = await query_and_verify(client, target, validator_engine, request)
    assert result.ok and result.ttft_s is not None and result.ttft_s < 0.5, "the cheat flatters time to first token"
    assert verdict.reason is VerdictReason.BUFFERED_STREAM


def test_cheaters_are_built_by_name_and_are_engines(miner_engine) -> None:
    for kind in CheatKind:
        cheater = build_cheater(kind.value, miner_engine)
        assert isinstance(cheater, Engine) and cheater.info == miner_engine.info
    with pytest.raises(ValueError, match="random_tokens"):
        build_cheater("teleport", miner_engine)
