"""Honest miners are never flagged: zero false positives over hundreds of challenges."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from adversarial_kit import CONFIG, build, challenges, query_and_verify

from neurons.engines.base import Engine
from neurons.models import resolve_model
from neurons.scoring import Measurement, ScoringConfig, answer_locally, compute_rewards, verify_answer

HONEST_CHALLENGES = 200


async def _false_positives(miner: Engine, validator: Engine, requests, config: ScoringConfig) -> list[str]:
    flagged = []
    for request in requests:
        local = await answer_locally(miner, request)
        verdict = await verify_answer(validator, request, local, config)
        if not verdict.verified:
            flagged.append(f"{verdict.reason}: {verdict.detail} ({request.model_dump_json()[:200]})")
    return flagged


async def test_honest_tiny_miner_is_never_flagged(miner_engine: Engine, validator_engine: Engine) -> None:
    requests = challenges(seed=1000, n=HONEST_CHALLENGES)
    assert {r.temperature == 0 for r in requests} == {True, False}
    flagged = await _false_positives(miner_engine, validator_engine, requests, CONFIG)
    assert flagged == [], f"{len(flagged)} of {HONEST_CHALLENGES} honest answers flagged: {flagged[:5]}"


async def test_honest_miner_through_gateway_and_client_is_verified_and_rewarded(
    serve, client, miner_engine: Engine, validator_engine: Engine
) -> None:
    target = await serve(miner_engine)
    reasons: Counter[str] = Counter()
    measurements = []
    for uid, request in enumerate(challenges(seed=2000, n=25)):
        result, verdict = await query_and_verify(client, target, validator_engine, request)
        assert result.ok, result.message
        assert len(result.chunk_arrivals) >= 1 and result.ttft_s is not None
        reasons[verdict.reason.value] += 1
        measurements.append(Measurement(uid, verdict.verified, result.tokens_per_s, result.ttft_s))
    assert reasons == {"ok": 25}
    assert all(r > 0 for r in compute_rewards(measurements, CONFIG).values())


@pytest.mark.slow
async def test_honest_smollm2_miner_is_never_flagged(model_home: Path) -> None:
    folder = resolve_model("smollm2", model_home, progress=False)
    engine = build(str(folder), model_home)
    try:
        config = ScoringConfig(min_new_tokens=4, max_new_tokens=12)
        requests = challenges(seed=3000, n=16, config=config)
        # The miner and the validator share one engine here: loading SmolLM2 twice costs more than it shows.
        flagged = await _false_positives(engine, engine, requests, config)
    finally:
        await engine.aclose()
    assert flagged == []
