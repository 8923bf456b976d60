"""One validator step over a mix of honest and cheating miners, queried concurrently: only honesty earns weight."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from adversarial_kit import CONFIG, challenges, query_and_verify
from prometheus_client import CollectorRegistry

from neurons.adversaries import InventedLogprobsEngine, RandomTokensEngine, SlowEngine, TruncatingEngine, TruncationMode
from neurons.scoring import Measurement, VerdictReason, compute_rewards, weights_from_scores
from neurons.state import ValidatorState, load_state, save_state
from neurons.telemetry import UidStepMetrics, ValidatorMetrics, WandbRun, read_history

STEPS = 2


async def test_steps_over_mixed_miners_weight_only_the_honest_ones(
    serve, client, miner_engine, validator_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    miners = {
        0: miner_engine,
        1: RandomTokensEngine(miner_engine, seed=1),
        2: InventedLogprobsEngine(miner_engine),
        3: TruncatingEngine(miner_engine, mode=TruncationMode.CLAIM_STOP),
        4: SlowEngine(miner_engine, delay_s=0.5),
        5: miner_engine,
    }
    targets = {uid: await serve(engine) for uid, engine in miners.items()}
    state_path = tmp_path / "state.json"
    registry = CollectorRegistry()
    metrics = ValidatorMetrics(registry)
    run = WandbRun.start(project="axongate-test", directory=tmp_path, config=CONFIG.model_dump())
    requests = challenges(seed=31, n=STEPS)
    for step, request in enumerate(requests):
        state = load_state(state_path)  # every step resumes from disk, as after a restart
        state.sync_hotkeys({uid: f"hotkey-{uid}" for uid in miners})
        outcomes = await asyncio.gather(
            *(query_and_verify(client, t, validator_engine, request, timeout_s=2.0) for t in targets.values())
        )
        verdicts = {uid: verdict for uid, (_, verdict) in zip(targets, outcomes, strict=True)}
        measurements = [
            Measurement(uid, verdicts[uid].verified, result.tokens_per_s, result.ttft_s)
            for uid, (result, _) in zip(targets, outcomes, strict=True)
        ]
        rewards = compute_rewards(measurements, CONFIG)
        state.record_step(rewards, {uid: v.verified for uid, v in verdicts.items()}, CONFIG.ema_alpha)
        save_state(state, state_path)
        vector = weights_from_scores(state.scores())
        assert vector is not None
        weights = vector.as_dict()
        for verdict in verdicts.values():
            metrics.observe_verdict(verdict.reason.value, verdict.verified)
        metrics.set_scores(state.scores(), weights)
        metrics.steps.inc()
        run.log_step(
            step,
            [
                UidStepMetrics(
                    uid, float(verdicts[uid].verified), rewards[uid], state.miners[uid].score, weights.get(uid, 0.0)
                )
                for uid in miners
            ],
        )
        assert {uid for uid, v in verdicts.items() if v.verified} == {0, 5}
        assert verdicts[4].reason is VerdictReason.NO_RESPONSE
        assert set(weights) == {0, 5} and sum(weights.values()) == pytest.approx(1.0)
    run.finish()

    final: ValidatorState = load_state(state_path)
    assert final.step == STEPS
    assert all(final.miners[uid].score == 0.0 for uid in (1, 2, 3, 4))
    assert [row["miner/0/verified_rate"] for row in read_history(run.run_dir)] == [1.0] * STEPS
    assert [row["miner/2/weight"] for row in read_history(run.run_dir)] == [0.0] * STEPS
    assert registry.get_sample_value("axongate_validator_steps_total") == STEPS
    failures = registry.get_sample_value("axongate_validator_verification_failures_total", {"reason": "no_response"})
    assert failures == STEPS
