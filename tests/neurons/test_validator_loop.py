"""ValidatorLoop with the real tiny engine and in-process fakes for the chain and the network."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from neurons.chain import ChainWriteResult, MetagraphSnapshot, NeuronRecord
from neurons.challenges import ChallengeGenerator
from neurons.engines import build_engine
from neurons.engines.base import EngineError, ScoredPosition
from neurons.engines.config import EngineConfig
from neurons.scoring.answer import answer_locally
from neurons.scoring.config import ScoringConfig
from neurons.state import ValidatorState, load_state
from neurons.telemetry import ValidatorMetrics
from neurons.validator_loop import ValidatorLoop
from neurons.weights import WeightSetter
from protocol.client import MinerTarget, QueryErrorCode, QueryResult
from protocol.synapses import InferenceRequest

SCORING = ScoringConfig(min_new_tokens=8, max_new_tokens=16, sample_size=8, ema_alpha=0.5)


def neuron(uid: int, *, serving: bool = True) -> NeuronRecord:
    return NeuronRecord(
        uid=uid, hotkey=f"hk{uid}", coldkey=f"ck{uid}", stake=1.0, validator_permit=uid == 0,
        ip="127.0.0.1" if serving else None, port=9000 + uid if serving else None,
        protocol=4, last_update=0, incentive=0.0, dividends=0.0,
    )  # fmt: skip


class FakeChain:
    def __init__(self) -> None:
        self.neurons = [neuron(0), neuron(1), neuron(2), neuron(3, serving=False)]
        self.set_calls: list[dict[int, float]] = []

    async def metagraph(self) -> MetagraphSnapshot:
        return MetagraphSnapshot(block=100, netuid=1, neurons=tuple(self.neurons))

    async def block(self) -> int:
        return 100

    async def certificate(self, hotkey_ss58: str) -> bytes | None:
        return None

    async def blocks_since_last_update(self, uid: int) -> int:
        return 1000

    async def weights_rate_limit(self) -> int:
        return 1

    async def set_weights(self, wallet: object, weights: Mapping[int, float], *, version_key: int) -> ChainWriteResult:
        self.set_calls.append(dict(weights))
        return ChainWriteResult(success=True, error=None, message="ok", block=100)


class FakeClient:
    """uid 1 answers honestly with the engine; uid 2 times out."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.asked: list[int] = []

    async def infer(self, target: MinerTarget, request: InferenceRequest, *, timeout_s: float) -> QueryResult:
        uid = target.port - 9000
        self.asked.append(uid)
        if uid != 1:
            return QueryResult(ok=False, error=QueryErrorCode.TIMEOUT, message="deadline passed")
        answer = await answer_locally(self.engine, request)
        tps = len(answer.response.token_ids) / answer.total_s
        return QueryResult(ok=True, response=answer.response, ttft_s=answer.ttft_s, total_s=answer.total_s,
                           tokens_per_s=tps, chunk_arrivals=answer.chunk_arrivals)  # fmt: skip


class FailingScore:
    """The validator's engine, broken: score() raises."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.info = inner.info

    def encode_chat(self, messages: Sequence[object]) -> list[int]:
        return self._inner.encode_chat(messages)

    def decode(self, ids: Sequence[int]) -> str:
        return self._inner.decode(ids)

    async def score(self, prompt_ids: Sequence[int], ids: Sequence[int], k: int = 5) -> list[ScoredPosition]:
        raise EngineError("worker died")


@pytest.fixture
async def tiny_engine(model_home: Path):
    engine = build_engine(EngineConfig(model="tiny", threads=1), model_home, progress=False)
    yield engine
    await engine.aclose()


def make_loop(chain: FakeChain, engine: object, client: FakeClient, state_path: Path) -> ValidatorLoop:
    return ValidatorLoop(
        chain=chain, engine=engine, client=client,
        setter=WeightSetter(chain, object(), uid=0, interval_blocks=1, backoff_s=0.0),
        state=ValidatorState(), state_path=state_path, scoring=SCORING, self_uid=0, query_timeout_s=5.0,
        challenges=ChallengeGenerator(3, config=SCORING), metrics=ValidatorMetrics(CollectorRegistry()),
        rng=random.Random(0),
    )  # fmt: skip


async def test_a_step_scores_serving_miners_sets_weights_and_persists(tiny_engine, tmp_path: Path) -> None:
    chain = FakeChain()
    client = FakeClient(tiny_engine)
    loop = make_loop(chain, tiny_engine, client, tmp_path / "state.json")

    summary = await loop.step()

    assert sorted(client.asked) == [1, 2]  # not itself, not the uid without an endpoint
    assert summary.queried == 2 and summary.verified == 1 and summary.weights_set
    assert chain.set_calls == [{1: 1.0}]  # the timed-out miner earns nothing
    saved = load_state(tmp_path / "state.json")
    assert saved.step == 1 and saved.miners[1].score == pytest.approx(0.5) and saved.miners[2].score == 0.0
    report = loop.report(await chain.metagraph())
    assert report["uids"]["1"]["verified_pct"] == 100.0 and report["uids"]["2"]["last_reason"].startswith("no_response")


async def test_a_failure_of_the_validators_own_engine_costs_miners_nothing(tiny_engine, tmp_path: Path) -> None:
    chain = FakeChain()
    client = FakeClient(tiny_engine)
    loop = make_loop(chain, tiny_engine, client, tmp_path / "state.json")
    await loop.step()
    before = loop.state.scores()[1]

    loop._engine = FailingScore(tiny_engine)
    await loop.step()

    assert loop.state.scores()[1] == before  # the honest miner's answer could not be judged: no change
    assert loop.state.scores()[2] == 0.0
