"""A whole subnet on one machine: an embedded local chain, wallets, and real miner and validator processes.

Used by ``axongate demo`` and by the end-to-end tests. Each neuron is a separate OS process
started with its own TOML config (written into the work folder so a user can read and reuse
it); they share only the local chain file, exactly as they would share a real chain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from neurons.chain.config import ChainConfig
from neurons.chain.localnet import LocalnetParams, init_localnet, register_neuron
from neurons.wallets import create_wallet
from protocol.errors import AxongateError

__all__ = ["LocalSubnet", "MinerSpec", "SubnetError", "SubnetSpec"]


class SubnetError(AxongateError):
    """A neuron process died or the subnet did not reach the expected state in time."""


@dataclass(frozen=True)
class MinerSpec:
    """One miner process."""

    name: str
    model: str
    throttle_tokens_per_s: float | None = None
    """Caps the miner's speed (the demo's slow honest miner)."""
    stake: float = 10.0


@dataclass(frozen=True)
class SubnetSpec:
    """The subnet to run. ``home`` holds prepared models; ``workdir`` everything of this run."""

    home: Path
    workdir: Path
    miners: tuple[MinerSpec, ...]
    validator_model: str
    netuid: int = 1
    block_time_s: float = 1.0
    tempo: int = 10
    weights_rate_limit: int = 5
    weights_interval_blocks: int = 5
    query_timeout_s: float = 30.0
    max_new_tokens: int = 24
    step_interval_s: float = 1.0
    torch_threads: int = 1
    validator_stake: float = 1000.0
    extra_validator: dict[str, Any] = field(default_factory=dict)
    """Extra validator settings by section, e.g. ``{"scoring": {"ema_alpha": 0.3}}``."""
    extra_miner: dict[str, Any] = field(default_factory=dict)
    """Extra settings for every miner, by section."""


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class LocalSubnet:
    """Set up, start, watch and stop a local subnet. Use as a context manager so processes always stop."""

    def __init__(self, spec: SubnetSpec) -> None:
        self.spec = spec
        self.chain_path = spec.workdir / "chain.sqlite"
        self.wallet_path = spec.workdir / "wallets"
        self.logs = spec.workdir / "logs"
        self.validator_dir = spec.workdir / "validator"
        self._processes: list[_Process] = []
        self.uids: dict[str, int] = {}

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Create the chain, the wallets and the registrations, and write each neuron's config."""
        spec = self.spec
        spec.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        params = LocalnetParams(
            netuid=spec.netuid,
            block_time_s=spec.block_time_s,
            tempo=spec.tempo,
            weights_rate_limit=spec.weights_rate_limit,
            min_allowed_weights=1,
            serving_rate_limit=0,
        )
        init_localnet(self.chain_path, params, overwrite=True)
        for name, stake, permit in [("validator", spec.validator_stake, True)] + [
            (m.name, m.stake, False) for m in spec.miners
        ]:
            wallet = create_wallet(name, "default", self.wallet_path, overwrite=True)
            self.uids[name] = register_neuron(
                self.chain_path,
                spec.netuid,
                wallet.hotkey.ss58_address,
                wallet.coldkeypub.ss58_address,
                stake=stake,
                validator_permit=permit,
            )
        for miner in spec.miners:
            self._write_config(miner.name, self._miner_config(miner))
        self._write_config("validator", self._validator_config())

    def _common(self, name: str, model: str) -> dict[str, Any]:
        return {
            "home": str(self.spec.home),
            "wallet": {"name": name, "hotkey": "default", "path": str(self.wallet_path)},
            "chain": {"network": "local", "netuid": self.spec.netuid, "localnet_path": str(self.chain_path)},
            "engine": {"kind": "hf", "model": model, "threads": self.spec.torch_threads},
        }

    def _miner_config(self, miner: MinerSpec) -> dict[str, Any]:
        config = self._common(miner.name, miner.model)
        config["gateway"] = {"host": "127.0.0.1", "port": 0}
        config["metagraph_refresh_blocks"] = 2
        if miner.throttle_tokens_per_s is not None:
            config["engine"]["throttle_tokens_per_s"] = miner.throttle_tokens_per_s
        for section, values in self.spec.extra_miner.items():
            config.setdefault(section, {}).update(values)
        return config

    def _validator_config(self) -> dict[str, Any]:
        spec = self.spec
        config = self._common("validator", spec.validator_model)
        config["loop"] = {
            "step_interval_s": spec.step_interval_s,
            "query_timeout_s": spec.query_timeout_s,
            "weights_interval_blocks": spec.weights_interval_blocks,
            "state_dir": str(self.validator_dir),
        }
        config["scoring"] = {"max_new_tokens": spec.max_new_tokens, "min_new_tokens": min(8, spec.max_new_tokens)}
        config["telemetry"] = {"wandb_dir": str(self.validator_dir)}
        for section, values in spec.extra_validator.items():
            config.setdefault(section, {}).update(values)
        return config

    def _write_config(self, name: str, config: dict[str, Any]) -> None:
        (self.spec.workdir / f"{name}.toml").write_text(tomli_w.dumps(config))

    # -- processes ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every miner, then the validator."""
        for miner in self.spec.miners:
            self.spawn(miner.name)
        self.spawn("validator")

    def _spawn(self, name: str, command: str, extra_args: tuple[str, ...] = ()) -> None:
        log_path = self.logs / f"{name}.log"
        env = dict(os.environ, AXONGATE_HOME=str(self.spec.home), PYTHONUNBUFFERED="1")
        env.setdefault("WANDB_MODE", "offline")
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "neurons.cli",
                    command,
                    "--config",
                    str(self.spec.workdir / f"{name}.toml"),
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._processes.append(_Process(name, popen, log_path))

    def kill(self, name: str) -> None:
        """SIGKILL one neuron (crash tests); it is forgotten, ``spawn`` starts it again."""
        for proc in list(self._processes):
            if proc.name == name:
                proc.popen.kill()
                proc.popen.wait()
                self._processes.remove(proc)

    def spawn(self, name: str, *extra_args: str) -> None:
        """(Re)start one neuron from its config (plus ``extra_args`` flags); its log file starts over."""
        self._spawn(name, "validator" if name == "validator" else "miner", extra_args)

    def wait(self, name: str, timeout_s: float) -> int:
        """Wait for one neuron to exit by itself; returns its exit code."""
        for proc in self._processes:
            if proc.name == name:
                try:
                    return proc.popen.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    raise SubnetError(f"{name} still running after {timeout_s:.0f}s:\n{proc.tail()}") from None
        raise SubnetError(f"no process named {name}")

    def check_alive(self) -> None:
        """Raise ``SubnetError`` with the log tail of the first neuron that exited."""
        for proc in self._processes:
            code = proc.popen.poll()
            if code is not None:
                raise SubnetError(f"{proc.name} exited with code {code}; last log lines:\n{proc.tail()}")

    def stop(self, grace_s: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every process, wait up to ``grace_s``, SIGKILL what is left; returns exit codes."""
        for proc in self._processes:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        codes: dict[str, int | None] = {}
        for proc in self._processes:
            try:
                codes[proc.name] = proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                codes[proc.name] = None
                proc.popen.wait()
        self._processes.clear()
        return codes

    def __enter__(self) -> LocalSubnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation ----------------------------------------------------------------------------
    def chain_config(self) -> ChainConfig:
        return ChainConfig(network="local", netuid=self.spec.netuid, localnet_path=self.chain_path)

    def report(self) -> dict[str, Any] | None:
        """The validator's latest per-uid report (``report.json``), or None before its first step."""
        try:
            return json.loads((self.validator_dir / "report.json").read_text())
        except (OSError, ValueError):
            return None

    async def wait_for_weight_sets(
        self, count: int, *, timeout_s: float, on_progress: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Wait until the validator reports ``count`` successful weight sets; returns its last report."""
        import asyncio

        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            report = self.report()
            if on_progress is not None:
                on_progress(report or {})
            if report and report.get("weight_sets", 0) >= count:
                return report
            if time.monotonic() > deadline:
                raise SubnetError(
                    f"the validator set weights {report.get('weight_sets', 0) if report else 0} of {count} times "
                    f"within {timeout_s:.0f}s; logs in {self.logs}"
                )
            await asyncio.sleep(1.0)
