"""WeightSetter: sets only when due, retries only transient failures, never drops the weights it was given."""

from __future__ import annotations

from collections.abc import Mapping

from neurons.chain import ChainErrorCode, ChainWriteResult
from neurons.weights import WeightSetter


class FakeChain:
    def __init__(self, *, since: int, rate_limit: int, outcomes: list[ChainWriteResult]) -> None:
        self.since = since
        self.rate_limit = rate_limit
        self.outcomes = outcomes
        self.calls: list[dict[int, float]] = []

    async def blocks_since_last_update(self, uid: int) -> int:
        return self.since

    async def weights_rate_limit(self) -> int:
        return self.rate_limit

    async def set_weights(self, wallet: object, weights: Mapping[int, float], *, version_key: int) -> ChainWriteResult:
        self.calls.append(dict(weights))
        return self.outcomes.pop(0)


OK = ChainWriteResult(success=True, error=None, message="ok", block=10)
DOWN = ChainWriteResult(success=False, error=ChainErrorCode.UNAVAILABLE, message="timed out", block=None)
LIMITED = ChainWriteResult(success=False, error=ChainErrorCode.RATE_LIMITED, message="too fast", block=None)


def setter(chain: FakeChain, interval: int = 10) -> WeightSetter:
    return WeightSetter(chain, object(), uid=0, interval_blocks=interval, retries=2, backoff_s=0.0)


async def test_not_due_before_the_interval_or_the_rate_limit() -> None:
    chain = FakeChain(since=9, rate_limit=5, outcomes=[])
    outcome = await setter(chain).maybe_set({1: 1.0})
    assert not outcome.attempted and outcome.blocks_since_last_update == 9 and chain.calls == []
    chain = FakeChain(since=12, rate_limit=20, outcomes=[])
    assert not (await setter(chain).maybe_set({1: 1.0})).attempted


async def test_nothing_to_set_when_no_score_is_positive() -> None:
    chain = FakeChain(since=100, rate_limit=1, outcomes=[])
    outcome = await setter(chain).maybe_set(None)
    assert not outcome.attempted and "no miner" in outcome.message and chain.calls == []


async def test_transient_failures_are_retried_with_the_same_weights() -> None:
    chain = FakeChain(since=100, rate_limit=1, outcomes=[DOWN, DOWN, OK])
    outcome = await setter(chain).maybe_set({1: 0.25, 2: 0.75})
    assert outcome.success and outcome.attempts == 3
    assert chain.calls == [{1: 0.25, 2: 0.75}] * 3


async def test_refusals_are_not_retried_and_retries_are_bounded() -> None:
    chain = FakeChain(since=100, rate_limit=1, outcomes=[LIMITED])
    outcome = await setter(chain).maybe_set({1: 1.0})
    assert outcome.attempted and not outcome.success and outcome.attempts == 1 and "too fast" in outcome.message
    chain = FakeChain(since=100, rate_limit=1, outcomes=[DOWN, DOWN, DOWN])
    outcome = await setter(chain).maybe_set({1: 1.0})
    assert not outcome.success and outcome.attempts == 3 and chain.outcomes == []
