"""One wandb run per validator start: its config, per-step per-uid metrics and sampled challenges.

Online when a wandb API key is configured (the ``api_key`` argument or ``WANDB_API_KEY``), offline
otherwise: an offline run writes ``<dir>/wandb/offline-run-*/run-*.wandb``, which ``wandb sync``
uploads later and :func:`neurons.telemetry.wandb_reader.read_history` reads back. Every method
blocks (wandb talks to its service process); async callers run them in a worker thread.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurons.telemetry.wandb_reader import find_run_file, read_records

__all__ = ["ChallengeSample", "UidStepMetrics", "WandbRun"]

_SAMPLE_COLUMNS = ["step", "uid", "kind", "temperature", "prompt", "answer", "verified", "reason"]
_MAX_CELL_CHARS = 2000


@dataclass(frozen=True, slots=True)
class UidStepMetrics:
    """One uid's numbers for one step; ``None`` where not measured (logged as absent)."""

    uid: int
    verified_rate: float
    """Share of this uid's answers verified so far (or this step, as the caller chooses)."""
    reward: float
    ema: float
    weight: float
    ttft_s: float | None = None
    tokens_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class ChallengeSample:
    """One challenge and answer for the sampled-answers table."""

    uid: int
    kind: str
    temperature: float
    prompt: str
    answer: str
    verified: bool
    reason: str


class WandbRun:
    """A started wandb run; build with :meth:`start`, end with :meth:`finish`."""

    def __init__(self, run: Any, mode: str) -> None:
        self._run = run
        self.mode = mode
        """``"online"`` or ``"offline"``."""
        self.run_dir = Path(run.dir).parent
        """The run's folder (for offline runs: what ``wandb sync`` takes); stays valid after :meth:`finish`."""
        self.run_id = str(run.id)

    @staticmethod
    def mode_for(api_key: str | None) -> str:
        """``"online"`` when an API key is configured, else ``"offline"`` (nothing leaves the machine)."""
        return "online" if api_key else "offline"

    @classmethod
    def start(
        cls,
        *,
        project: str,
        directory: Path,
        config: Mapping[str, Any],
        api_key: str | None = None,
        entity: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
    ) -> WandbRun:
        """Start the run (online iff an API key is configured); ``config`` is recorded with it."""
        import wandb

        key = api_key or os.environ.get("WANDB_API_KEY")
        mode = cls.mode_for(key)
        if key:
            wandb.login(key=key, verify=False, prompt=False)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=project,
            entity=entity,
            name=name,
            dir=str(directory),
            config=dict(config),
            tags=list(tags),
            mode=mode,
            reinit="create_new",
        )
        return cls(run, mode)

    def log_step(
        self, step: int, per_uid: Sequence[UidStepMetrics], samples: Sequence[ChallengeSample] = (), **extra: float
    ) -> None:
        """Log one step: ``miner/<uid>/<metric>`` per uid, ``extra`` scalars, and a table of samples.

        Raises ``RuntimeError`` after :meth:`finish`.
        """
        if self._run is None:
            raise RuntimeError("the wandb run is finished")
        data: dict[str, Any] = {"step": step, **extra}
        for m in per_uid:
            prefix = f"miner/{m.uid}/"
            values = {
                "verified_rate": m.verified_rate,
                "reward": m.reward,
                "ema": m.ema,
                "weight": m.weight,
                "ttft_s": m.ttft_s,
                "tokens_per_s": m.tokens_per_s,
            }
            data.update({prefix + k: v for k, v in values.items() if v is not None and math.isfinite(v)})
        if samples:
            import wandb

            table = wandb.Table(columns=_SAMPLE_COLUMNS)
            for s in samples:
                table.add_data(
                    step, s.uid, s.kind, s.temperature, s.prompt[:_MAX_CELL_CHARS], s.answer[:_MAX_CELL_CHARS],
                    s.verified, s.reason,
                )  # fmt: skip
            data["samples"] = table
        self._run.log(data, step=step)

    def finish(self, *, flush_timeout_s: float = 30.0) -> None:
        """Close the run; idempotent. For an offline run, returns once its file is complete.

        wandb's ``finish`` can return before its service has written the run file out; waiting for
        the file's exit record (up to ``flush_timeout_s``) means the file is complete when this
        returns, so it can be read back or synced at once. Raises ``TimeoutError`` past the timeout.
        """
        if self._run is None:
            return
        self._run.finish()
        self._run = None
        if self.mode == "offline":
            _wait_for_exit_record(self.run_dir, flush_timeout_s)


def _wait_for_exit_record(run_dir: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in read_records(find_run_file(run_dir))):
                return
        except (FileNotFoundError, ValueError):
            pass  # not written yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"wandb did not finish writing {run_dir} within {timeout_s:g}s")
        time.sleep(0.05)
