"""The ``Engine`` contract, checked identically against every engine (see ``conftest.ENGINE_PARAMS``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from engine_support import EngineUnderTest

from neurons.engines.base import GenerationRequest, InvalidEngineRequest, TokenChunk
from protocol.synapses import ChatMessage, FinishReason

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Completion:
    chunks: list[TokenChunk]

    @property
    def token_ids(self) -> list[int]:
        return [t for c in self.chunks for t in c.token_ids]

    @property
    def logprobs(self) -> list[float]:
        return [x for c in self.chunks for x in c.logprobs]

    @property
    def ranks(self) -> list[int]:
        return [r for c in self.chunks for r in c.ranks]

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def finish_reason(self) -> FinishReason | None:
        return self.chunks[-1].finish_reason


async def complete(eut: EngineUnderTest, request: GenerationRequest) -> Completion:
    return Completion([chunk async for chunk in eut.engine.generate(request)])


def prompt(eut: EngineUnderTest, text: str = "Tell me a story about a fox.") -> tuple[int, ...]:
    return tuple(eut.engine.encode_chat([ChatMessage(role="user", content=text)]))


async def test_info_describes_the_model(engine_under_test: EngineUnderTest) -> None:
    info = engine_under_test.engine.info
    assert len(info.weights_sha256) == 64 and int(info.weights_sha256, 16) >= 0
    assert info.context_length > 0 and info.vocab_size > 0
    assert info.eos_token_ids and all(0 <= t < info.vocab_size for t in info.eos_token_ids)


async def test_encode_chat_applies_the_template(engine_under_test: EngineUnderTest) -> None:
    engine = engine_under_test.engine
    ids = engine.encode_chat([ChatMessage(role="user", content="hello there")])
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    text = engine.decode(ids)
    assert "hello there" in text and text.rstrip().endswith("assistant")


async def test_stream_is_well_formed(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    out = await complete(eut, GenerationRequest(prompt(eut), max_tokens=24, temperature=1.0, seed=3))
    assert out.chunks and all(c.token_ids for c in out.chunks)
    assert all(len(c.token_ids) == len(c.logprobs) == len(c.ranks) for c in out.chunks)
    assert [c.finish_reason for c in out.chunks[:-1]] == [None] * (len(out.chunks) - 1)
    assert out.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert all(lp <= 0.0 for lp in out.logprobs) and all(1 <= r <= eut.engine.info.vocab_size for r in out.ranks)
    assert out.text == eut.engine.decode(out.token_ids)
    assert all("\ufffd" not in c.text[-1:] for c in out.chunks[:-1])


async def test_max_tokens_is_honoured(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    for max_tokens in (1, 7):
        out = await complete(eut, GenerationRequest(prompt(eut), max_tokens=max_tokens, temperature=1.0, seed=11))
        assert len(out.token_ids) <= max_tokens
        if out.finish_reason == FinishReason.LENGTH:
            assert len(out.token_ids) == max_tokens
        else:
            assert out.token_ids[-1] in eut.engine.info.eos_token_ids


async def test_stops_at_eos_and_reports_it(engine_under_test: EngineUnderTest) -> None:
    """Sampled runs that hit EOS end right there, with the EOS token included and reason ``stop``."""
    eut = engine_under_test
    eos = eut.engine.info.eos_token_ids
    ids = prompt(eut, "Answer with one word: what colour is the sky?")
    requests = [GenerationRequest(ids, max_tokens=120, temperature=1.0, seed=s) for s in range(16)]
    outs = await asyncio.gather(*(complete(eut, r) for r in requests))
    stopped = [o for o in outs if o.finish_reason == FinishReason.STOP]
    assert stopped, "no sampled run reached EOS in 16 tries"
    for out in stopped:
        assert out.token_ids[-1] in eos and not eos.intersection(out.token_ids[:-1])
    for out in outs:
        if out.finish_reason == FinishReason.LENGTH:
            assert len(out.token_ids) == 120 and not eos.intersection(out.token_ids)


async def test_generate_logprobs_match_score(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    ids = prompt(eut)
    for request in (
        GenerationRequest(ids, max_tokens=32, temperature=0.0),
        GenerationRequest(ids, max_tokens=32, temperature=1.3, top_k=50, top_p=0.95, seed=7),
    ):
        out = await complete(eut, request)
        scored = await eut.engine.score(ids, out.token_ids, k=5)
        assert [s.token_id for s in scored] == out.token_ids
        diffs = [abs(a - s.logprob) for a, s in zip(out.logprobs, scored, strict=True)]
        assert max(diffs) < eut.logprob_tolerance, diffs
        agree = sum(a == s.rank for a, s in zip(out.ranks, scored, strict=True))
        assert agree >= len(scored) - (0 if eut.batch_invariant else 2)


async def test_greedy_tokens_have_rank_one(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    out = await complete(eut, GenerationRequest(prompt(eut, "Name three colours."), max_tokens=20))
    assert out.ranks == [1] * len(out.token_ids)
    scored = await eut.engine.score(prompt(eut, "Name three colours."), out.token_ids, k=3)
    assert all(s.top_ids[0] == s.token_id for s in scored)


async def test_sampling_reaches_lower_ranks_and_score_reports_them(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    ids = prompt(eut)
    out = await complete(eut, GenerationRequest(ids, max_tokens=48, temperature=2.0, seed=5))
    assert max(out.ranks) > 1
    scored = await eut.engine.score(ids, out.token_ids, k=8)
    for s in scored:
        assert list(s.top_logprobs) == sorted(s.top_logprobs, reverse=True) and len(s.top_ids) == 8
        if s.token_id in s.top_ids:
            assert s.top_ids.index(s.token_id) + 1 == s.rank
        else:
            assert s.rank > 8 and s.logprob <= s.top_logprobs[-1]


async def test_same_seed_same_tokens(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    ids = prompt(eut)
    make = lambda seed: GenerationRequest(ids, max_tokens=24, temperature=1.0, seed=seed)  # noqa: E731
    first, again, other = [await complete(eut, make(s)) for s in (42, 42, 43)]
    assert first.token_ids == again.token_ids
    assert first.token_ids != other.token_ids


async def test_concurrent_requests_each_match_their_solo_run(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    ids = prompt(eut)
    requests = [GenerationRequest(ids, max_tokens=20 + 3 * i, temperature=1.0, seed=100 + i) for i in range(8)]
    together = await asyncio.gather(*(complete(eut, r) for r in requests))
    for out in together:
        assert out.finish_reason is not None and out.text == eut.engine.decode(out.token_ids)
    if eut.batch_invariant:
        alone = [await complete(eut, r) for r in requests]
        assert [o.token_ids for o in together] == [o.token_ids for o in alone]
        assert [o.logprobs for o in together] == [o.logprobs for o in alone]


async def test_context_length_is_enforced(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    limit = eut.engine.info.context_length
    ids = (prompt(eut) * limit)[: limit - 3]
    with pytest.raises(InvalidEngineRequest, match="context length"):
        await complete(eut, GenerationRequest(ids, max_tokens=4))
    with pytest.raises(InvalidEngineRequest, match="context length"):
        await eut.engine.score(ids, [1, 2, 3, 4])
    out = await complete(eut, GenerationRequest(ids, max_tokens=3))
    assert 1 <= len(out.token_ids) <= 3


@pytest.mark.parametrize(
    "bad",
    [
        GenerationRequest((), max_tokens=4),
        GenerationRequest((1, 2), max_tokens=0),
        GenerationRequest((1, 2), max_tokens=4, temperature=-1.0),
        GenerationRequest((1, 2), max_tokens=4, top_p=0.0),
        GenerationRequest((1, 2), max_tokens=4, top_k=-1),
        GenerationRequest((1, -5), max_tokens=4),
        GenerationRequest((1, 10**9), max_tokens=4),
    ],
    ids=["empty-prompt", "zero-max-tokens", "negative-temperature", "zero-top-p", "negative-top-k", "neg-id", "big-id"],
)
async def test_bad_requests_are_rejected(engine_under_test: EngineUnderTest, bad: GenerationRequest) -> None:
    with pytest.raises(InvalidEngineRequest):
        await complete(engine_under_test, bad)


async def test_bad_score_inputs_are_rejected(engine_under_test: EngineUnderTest) -> None:
    engine = engine_under_test.engine
    with pytest.raises(InvalidEngineRequest):
        await engine.score([], [1, 2])
    with pytest.raises(InvalidEngineRequest):
        await engine.score([1, 2], [engine.info.vocab_size])
    assert await engine.score([1, 2], []) == []


async def test_abort_frees_the_slot(engine_under_test: EngineUnderTest) -> None:
    """Closing streams early ends their backend requests; the freed slots serve the next request."""
    eut = engine_under_test
    ids = prompt(eut)
    long = GenerationRequest(ids, max_tokens=eut.engine.info.context_length - len(ids), temperature=1.0, seed=1)
    streams = [eut.engine.generate(long) for _ in range(min(eut.slots, 6))]
    for stream in streams:
        await anext(stream)
    before = _tokens_generated(eut)
    for stream in streams:
        await stream.aclose()
    await _until_idle(eut)
    assert _tokens_generated(eut) - before <= 2 * len(streams), "aborted requests kept generating"
    out = await complete(eut, GenerationRequest(ids, max_tokens=5, temperature=1.0, seed=2))
    assert len(out.token_ids) >= 1 and out.finish_reason is not None


async def test_cancelling_the_consumer_task_aborts(engine_under_test: EngineUnderTest) -> None:
    eut = engine_under_test
    ids = prompt(eut)
    started = asyncio.Event()

    async def consume() -> None:
        # Seeded: an unseeded random draw can hit EOS at once and end the task before the cancel lands.
        request = GenerationRequest(ids, max_tokens=eut.engine.info.context_length - len(ids), temperature=1.0, seed=7)
        async for _ in eut.engine.generate(request):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    before = _tokens_generated(eut)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until_idle(eut)
    assert _tokens_generated(eut) - before <= 2, "the cancelled request kept generating"


def _tokens_generated(eut: EngineUnderTest) -> int:
    """The engine's generated-token counter where it has one (the HF engine), else 0."""
    return int(getattr(eut.engine, "tokens_generated", 0))


async def _until_idle(eut: EngineUnderTest) -> None:
    """Wait (bounded) until the engine reports no request in flight."""
    for _ in range(500):
        if eut.engine.requests_in_flight == 0:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{eut.engine.requests_in_flight} requests still in flight after abort")  # type: ignore[attr-defined]
