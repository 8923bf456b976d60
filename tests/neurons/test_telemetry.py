"""Telemetry: an offline wandb run read back from its file, and the Prometheus metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from neurons.telemetry import (
    ChallengeSample,
    UidStepMetrics,
    ValidatorMetrics,
    WandbRun,
    read_config,
    read_history,
    read_records,
)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")


def test_offline_run_logs_each_step_and_reads_back(tmp_path: Path, offline: None) -> None:
    run = WandbRun.start(project="axongate-test", directory=tmp_path, config={"netuid": 7, "alpha": 0.1})
    assert run.mode == "offline"
    assert run.run_dir.is_dir() and tmp_path in run.run_dir.parents
    for step in range(3):
        per_uid = [
            UidStepMetrics(uid=1, verified_rate=1.0, reward=0.5 + step / 10, ema=0.1 * step, weight=0.6, ttft_s=0.2),
            UidStepMetrics(uid=2, verified_rate=0.0, reward=0.0, ema=0.0, weight=0.4, tokens_per_s=None),
        ]
        sample = ChallengeSample(
            uid=1, kind="story", temperature=0.7, prompt="hi", answer="hello", verified=True, reason="ok"
        )
        run.log_step(step, per_uid, [sample] if step == 0 else (), blocks_since_weights=10.0 + step)
    run.finish()
    run.finish()  # idempotent

    rows = read_history(run.run_dir)
    assert [row["_step"] for row in rows] == [0, 1, 2]
    assert [row["miner/1/reward"] for row in rows] == pytest.approx([0.5, 0.6, 0.7])
    assert [row["blocks_since_weights"] for row in rows] == [10.0, 11.0, 12.0]
    assert "miner/2/tokens_per_s" not in rows[0] and rows[0]["miner/1/ttft_s"] == 0.2
    table = json.loads((run.run_dir / "files" / rows[0]["samples.path"]).read_text())
    assert table["data"][0][:3] == [0, 1, "story"]
    config = read_config(run.run_dir)
    assert config["netuid"] == 7 and config["alpha"] == 0.1
    with pytest.raises(RuntimeError, match="finished"):
        run.log_step(3, [])


def test_online_only_with_an_api_key() -> None:
    assert WandbRun.mode_for(None) == "offline"
    assert WandbRun.mode_for("") == "offline"
    assert WandbRun.mode_for("0123456789abcdef") == "online"


def test_reader_rejects_a_file_that_is_not_a_wandb_run(tmp_path: Path) -> None:
    bogus = tmp_path / "run-x.wandb"
    bogus.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a wandb run"):
        read_records(bogus)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no run"):
        read_history(empty)


def test_prometheus_metrics_live_on_the_given_registry() -> None:
    registry = CollectorRegistry()
    metrics = ValidatorMetrics(registry)
    metrics.steps.inc()
    metrics.set_scores({1: 0.5, 2: 0.0}, {1: 1.0})
    metrics.blocks_since_weights.set(42)
    metrics.observe_verdict("rank", verified=False)
    metrics.observe_verdict("ok", verified=True)
    metrics.observe_query(ttft_s=0.3, total_s=1.5)
    assert registry.get_sample_value("axongate_validator_steps_total") == 1
    assert registry.get_sample_value("axongate_validator_miner_score", {"uid": "1"}) == 0.5
    assert registry.get_sample_value("axongate_validator_miner_weight", {"uid": "2"}) == 0.0
    assert registry.get_sample_value("axongate_validator_blocks_since_weights_update") == 42
    assert registry.get_sample_value("axongate_validator_verification_failures_total", {"reason": "rank"}) == 1
    assert registry.get_sample_value("axongate_validator_verification_failures_total", {"reason": "ok"}) is None
    assert registry.get_sample_value("axongate_validator_query_latency_seconds_count", {"phase": "ttft"}) == 1
    assert b"axongate_validator_steps_total 1.0" in generate_latest(registry)
    ValidatorMetrics(CollectorRegistry())  # a second validator in the same process does not collide
