"""Setting weights reliably: when the interval and the chain's rate limit allow, with retries.

The validator's scores live in its state, never here: a failed set changes nothing but the
outcome it reports, so the next attempt uses the same (or newer) scores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger

__all__ = ["WeightSetOutcome", "WeightSetter"]


@dataclass(frozen=True, slots=True)
class WeightSetOutcome:
    """What one ``maybe_set`` did. ``attempted`` is False when it was not time yet or nothing to set."""

    attempted: bool
    success: bool
    message: str
    blocks_since_last_update: int | None = None
    attempts: int = 0


class WeightSetter:
    """Calls ``chain.set_weights`` for ``uid`` every ``interval_blocks`` (at least the rate limit).

    Transient failures (``result.retryable``: the chain was unreachable or timed out) are retried
    ``retries`` times with exponential backoff starting at ``backoff_s``; a refusal (rate limit,
    invalid weights, no permit) would fail the same way again, so the next step tries instead.
    """

    def __init__(
        self,
        chain: Any,
        wallet: Any,
        *,
        uid: int,
        interval_blocks: int,
        version_key: int = 0,
        retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self._chain = chain
        self._wallet = wallet
        self._uid = uid
        self._interval_blocks = interval_blocks
        self._version_key = version_key
        self._retries = retries
        self._backoff_s = backoff_s

    async def blocks_since_last_update(self) -> int:
        return await self._chain.blocks_since_last_update(self._uid)

    async def maybe_set(self, weights: Mapping[int, float] | None) -> WeightSetOutcome:
        """Set ``weights`` if due; ``None`` means there is nothing worth setting (all scores zero)."""
        since = await self.blocks_since_last_update()
        due = max(self._interval_blocks, await self._chain.weights_rate_limit())
        if since < due:
            return WeightSetOutcome(False, False, f"not due: {since} of {due} blocks", since)
        if not weights:
            return WeightSetOutcome(False, False, "no miner has a positive score; weights left unchanged", since)
        message = ""
        for attempt in range(1, self._retries + 2):
            result = await self._chain.set_weights(self._wallet, weights, version_key=self._version_key)
            if result.success:
                logger.info("weights set for {} uids at block {}", len(weights), result.block)
                return WeightSetOutcome(True, True, "ok", since, attempt)
            message = result.message
            code = getattr(result.error, "name", str(result.error))
            logger.warning("set_weights attempt {} failed ({}): {}", attempt, code, message)
            if not result.retryable or attempt > self._retries:
                break
            await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        return WeightSetOutcome(True, False, message, since, attempt)
