"""Challenges: reproducible from a seed, fresh every step, sampling parameters within bounds."""

from __future__ import annotations

from neurons.challenges import ChallengeGenerator, TaskKind
from neurons.scoring import ScoringConfig

N = 500


def _prompts(generator: ChallengeGenerator, n: int = N) -> list[str]:
    return [generator.next().request.model_dump_json() for _ in range(n)]


def test_same_seed_same_sequence_and_different_seeds_differ() -> None:
    assert _prompts(ChallengeGenerator(7), 50) == _prompts(ChallengeGenerator(7), 50)
    assert _prompts(ChallengeGenerator(7), 50) != _prompts(ChallengeGenerator(8), 50)
    assert _prompts(ChallengeGenerator(None), 5) != _prompts(ChallengeGenerator(None), 5)


def test_every_challenge_is_fresh_and_varied() -> None:
    generator = ChallengeGenerator(1)
    challenges = [generator.next() for _ in range(N)]
    conversations = {tuple(m.content for m in c.request.messages) for c in challenges}
    assert len(conversations) == N
    assert len({c.request.seed for c in challenges}) == N
    assert len({c.challenge_id for c in challenges}) == N
    assert {c.kind for c in challenges} == set(TaskKind)
    turns = {len(c.request.messages) for c in challenges if c.kind is TaskKind.MULTI_TURN}
    assert max(turns) >= 4


def test_sampling_parameters_are_bounded_and_always_checkable() -> None:
    config = ScoringConfig(min_new_tokens=4, max_new_tokens=24, greedy_fraction=0.3)
    generator = ChallengeGenerator(3, config=config)
    requests = [generator.next().request for _ in range(N)]
    assert all(r.stream for r in requests)
    assert all(4 <= r.max_tokens <= 24 for r in requests)
    assert {r.max_tokens for r in requests} == set(range(4, 25))
    greedy = [r for r in requests if r.temperature == 0]
    assert 0.2 * N < len(greedy) < 0.4 * N
    sampled = [r for r in requests if r.temperature > 0]
    assert all(0 < r.temperature <= 1.0 for r in sampled)
    # A sampled challenge always filters by top-k, so an unsampleable token is detectable by its rank.
    assert all(r.top_k > 0 for r in sampled)
    # Where top-p is set it leaves room for the nucleus check to fire (top_p + slack < 1).
    nucleus = [r for r in sampled if r.top_p < 1.0]
    assert nucleus and all(r.top_p + config.nucleus_slack < 1.0 for r in nucleus)
