"""The validator's persistent state: step, per-uid hotkey and score, and when weights were last set.

Saved atomically after every step (write a temporary file in the same folder, fsync it, rename it
over the old file, fsync the folder), so after a crash or ``SIGKILL`` the file holds either the
previous or the new complete state, never a mix. Loading never crashes the validator: a missing
file starts fresh; an unreadable or invalid one is logged (naming the file and the problem), kept
aside as ``<name>.corrupt`` for inspection, and the validator starts fresh. Temporary files left by
a write that was killed before its rename are removed on load.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neurons.scoring.rewards import update_ema
from protocol.errors import describe_validation_error
from protocol.files import write_atomic

__all__ = ["MinerRecord", "ValidatorState", "load_state", "save_state"]


class MinerRecord(BaseModel):
    """What the validator remembers about one uid."""

    model_config = ConfigDict(extra="forbid")

    hotkey: str = Field(min_length=1)
    score: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    """EMA of this hotkey's rewards at this uid."""
    queries: int = Field(default=0, ge=0)
    verified: int = Field(default=0, ge=0)


class ValidatorState(BaseModel):
    """Everything a restarted validator needs to carry on where it stopped."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    step: int = Field(default=0, ge=0)
    miners: dict[int, MinerRecord] = Field(default_factory=dict)
    last_weights_block: int | None = Field(default=None, ge=0)
    """Block of the last successful ``SetWeights``; ``None`` before the first."""

    def sync_hotkeys(self, hotkeys: Mapping[int, str]) -> list[int]:
        """Match the metagraph: forget uids that are gone, restart the score of uids whose hotkey changed.

        Returns the uids whose hotkey changed (a new registration took the slot), sorted.
        """
        replaced = sorted(uid for uid, rec in self.miners.items() if uid in hotkeys and hotkeys[uid] != rec.hotkey)
        kept = {uid: rec for uid, rec in self.miners.items() if uid in hotkeys and uid not in replaced}
        for uid, hotkey in hotkeys.items():
            kept.setdefault(uid, MinerRecord(hotkey=hotkey))
        self.miners = dict(sorted(kept.items()))
        return replaced

    def record_step(self, rewards: Mapping[int, float], verified: Mapping[int, bool], alpha: float) -> None:
        """Fold one step's rewards into the scores (uids unknown to :meth:`sync_hotkeys` are ignored)."""
        known = {uid: r for uid, r in rewards.items() if uid in self.miners}
        new_scores = update_ema(self.scores(), known, alpha)
        for uid in known:
            rec = self.miners[uid]
            rec.score = new_scores[uid]
            rec.queries += 1
            rec.verified += int(verified.get(uid, False))
        self.step += 1

    def scores(self) -> dict[int, float]:
        return {uid: rec.score for uid, rec in self.miners.items()}


def save_state(state: ValidatorState, path: Path) -> None:
    """Write ``state`` to ``path`` atomically and durably; raises ``OSError`` if the disk refuses."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, state.model_dump_json(indent=1).encode())


def load_state(path: Path) -> ValidatorState:
    """Read the state at ``path``; a fresh state when it is missing or corrupt (never raises for content)."""
    path = Path(path)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # from writes killed before their rename
        with contextlib.suppress(OSError):
            leftover.unlink()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        logger.info("no validator state at {}; starting fresh", path)
        return ValidatorState()
    except OSError as exc:
        logger.warning("cannot read validator state {}: {}; starting fresh", path, exc)
        return ValidatorState()
    try:
        return ValidatorState.model_validate_json(raw)
    except ValidationError as exc:
        problem = describe_validation_error(exc, limit=3)
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
        kept = f"kept as {aside}"
    except OSError as exc:
        kept = f"could not move it aside ({exc})"
    logger.warning("validator state {} is corrupt ({}); {}; starting fresh", path, problem, kept)
    return ValidatorState()
