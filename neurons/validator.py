"""Validator composition root: config -> wallet, chain, engine, client -> the validator loop.

Run with ``axongate validator`` or ``python neurons/validator.py``. SIGTERM or SIGINT ends the
loop after the step in progress (state is saved after every step), finishes the wandb run and
exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from neurons.chain.config import ChainConfig
from neurons.engines.config import EngineConfig
from neurons.scoring.config import ScoringConfig
from neurons.settings import AxongateSettings, WalletConfig, add_neuron_arguments, neuron_overrides

__all__ = ["LoopConfig", "TelemetryConfig", "ValidatorSettings", "add_commands", "run_validator"]


class LoopConfig(BaseModel):
    """Pacing of the validator loop and of weight setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_interval_s: float = Field(default=12.0, ge=0.0, description="Least time from one step's start to the next.")
    query_timeout_s: float = Field(default=30.0, gt=0.0, description="Deadline for one miner's whole answer.")
    weights_interval_blocks: int = Field(default=100, ge=1, description="Set weights this often (and never faster "
                                         "than the subnet's rate limit).")  # fmt: skip
    weights_retries: int = Field(default=3, ge=0, description="Retries of a failed SetWeights within one step.")
    weights_backoff_s: float = Field(default=2.0, ge=0.0, description="First retry delay; doubles each retry.")
    challenge_seed: int | None = Field(default=None, description="Seed the challenge generator (tests only).")
    state_dir: Path | None = Field(default=None, description="Default: <home>/validator/<wallet>-<hotkey>.")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many steps (default: run forever).")
    stats_window: int = Field(default=20, ge=1, description="Answers per uid behind the reported TTFT and tokens/s.")


class TelemetryConfig(BaseModel):
    """wandb and Prometheus. wandb runs online when an API key is configured, offline otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wandb_enabled: bool = True
    wandb_project: str = "axongate"
    wandb_entity: str | None = None
    wandb_api_key: SecretStr | None = Field(default=None, description="Or WANDB_API_KEY; absent = offline run.")
    wandb_dir: Path | None = Field(default=None, description="Default: the state directory.")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="Serve /metrics here (None = off).")
    metrics_host: str = "127.0.0.1"


class ValidatorSettings(AxongateSettings):
    """Everything a validator process needs; see ``configs/validator.toml`` for documented defaults."""

    wallet: WalletConfig = WalletConfig()
    chain: ChainConfig = ChainConfig()
    engine: EngineConfig = EngineConfig()
    scoring: ScoringConfig = ScoringConfig()
    loop: LoopConfig = LoopConfig()
    telemetry: TelemetryConfig = TelemetryConfig()

    def state_dir(self) -> Path:
        return self.loop.state_dir or self.home / "validator" / f"{self.wallet.name}-{self.wallet.hotkey}"


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("validator", help="Challenge miners, verify, score and set weights.")
    add_neuron_arguments(parser, config_help="TOML file (see configs/validator.toml)")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    settings = ValidatorSettings.load(args.config, **neuron_overrides(args), loop={"max_steps": args.max_steps})
    return asyncio.run(run_validator(settings))


async def run_validator(settings: ValidatorSettings) -> int:
    """Run the loop until SIGTERM/SIGINT or ``loop.max_steps``; returns the exit code."""
    from loguru import logger
    from prometheus_client import CollectorRegistry, start_http_server

    from neurons.chain import open_chain
    from neurons.challenges import ChallengeGenerator
    from neurons.engines import build_engine
    from neurons.logs import setup_logging
    from neurons.state import load_state
    from neurons.telemetry import ValidatorMetrics
    from neurons.validator_loop import ValidatorLoop
    from neurons.wallets import load_wallet
    from neurons.weights import WeightSetter
    from protocol.client import MinerClient

    setup_logging(settings.log_level, "validator")
    wallet = load_wallet(settings.wallet)
    hotkey = wallet.hotkey.ss58_address
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    registry = CollectorRegistry()
    metrics = ValidatorMetrics(registry)
    if settings.telemetry.metrics_port is not None:
        start_http_server(settings.telemetry.metrics_port, settings.telemetry.metrics_host, registry=registry)

    state_dir = settings.state_dir()
    state_path = state_dir / "state.json"
    chain = await open_chain(settings.chain, settings.home)
    engine = client = wandb_run = None
    try:
        uid = await chain.require_uid(hotkey)
        logger.info("loading engine {} model {}", settings.engine.kind, settings.engine.model)
        engine = await asyncio.to_thread(build_engine, settings.engine, settings.home)
        state = await asyncio.to_thread(load_state, state_path)
        wandb_run = await asyncio.to_thread(_start_wandb, settings, state_dir, hotkey)
        client = MinerClient(wallet.hotkey, verify_responses=True)
        validator = ValidatorLoop(
            chain=chain,
            engine=engine,
            client=client,
            setter=WeightSetter(
                chain,
                wallet,
                uid=uid,
                interval_blocks=settings.loop.weights_interval_blocks,
                version_key=settings.chain.weights_version_key,
                retries=settings.loop.weights_retries,
                backoff_s=settings.loop.weights_backoff_s,
            ),
            state=state,
            state_path=state_path,
            scoring=settings.scoring,
            self_uid=uid,
            query_timeout_s=settings.loop.query_timeout_s,
            challenges=ChallengeGenerator(settings.loop.challenge_seed, config=settings.scoring),
            metrics=metrics,
            wandb_run=wandb_run,
            stats_window=settings.loop.stats_window,
            rng=random.Random(settings.loop.challenge_seed),
        )
        logger.info("validator uid {} (hotkey {}) resuming at step {}", uid, hotkey, state.step)
        if wandb_run is not None:
            logger.info("wandb run ({}) in {}", wandb_run.mode, wandb_run.run_dir)
        steps = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                summary = await validator.step()
                logger.info("step {}: {}/{} answers verified", summary.step, summary.verified, summary.queried)
            except Exception as exc:  # one bad step (chain hiccup, engine error) must not end validation
                logger.exception("step failed: {}", exc)
            steps += 1
            if settings.loop.max_steps is not None and steps >= settings.loop.max_steps:
                break
            pause = settings.loop.step_interval_s - (time.monotonic() - started)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)
        logger.info("validator stopping after {} steps", steps)
        return 0
    finally:
        if client is not None:
            await client.aclose()
        if wandb_run is not None:
            await asyncio.to_thread(wandb_run.finish)
        if engine is not None:
            await engine.aclose()
        await chain.aclose()


def _start_wandb(settings: ValidatorSettings, state_dir: Path, hotkey: str) -> Any:
    telemetry = settings.telemetry
    if not telemetry.wandb_enabled:
        return None
    from loguru import logger

    from neurons.telemetry import WandbRun

    try:
        return WandbRun.start(
            project=telemetry.wandb_project,
            entity=telemetry.wandb_entity,
            directory=telemetry.wandb_dir or state_dir,
            api_key=telemetry.wandb_api_key.get_secret_value() if telemetry.wandb_api_key else None,
            config=settings.model_dump(mode="json", exclude={"telemetry": {"wandb_api_key"}}),
            name=f"validator-{hotkey[:8]}",
            tags=("validator", settings.chain.network),
        )
    except Exception as exc:  # wandb down or misconfigured: validate anyway, say so
        logger.warning("wandb disabled for this run: {}", exc)
        return None


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from neurons.cli import main

    sys.exit(main(["validator", *sys.argv[1:]]))
