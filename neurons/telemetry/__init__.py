"""Validator telemetry: a wandb run per validator start, Prometheus metrics, and an offline-run reader."""

from neurons.telemetry.metrics import ValidatorMetrics
from neurons.telemetry.wandb_reader import read_config, read_history, read_records
from neurons.telemetry.wandb_run import ChallengeSample, UidStepMetrics, WandbRun

__all__ = [
    "ChallengeSample",
    "UidStepMetrics",
    "ValidatorMetrics",
    "WandbRun",
    "read_config",
    "read_history",
    "read_records",
]
