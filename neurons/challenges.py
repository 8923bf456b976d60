"""Fresh validator challenges: chat prompts plus sampling parameters that cannot be looked up.

Every challenge is built from templates filled with words and numbers drawn from a private random
stream, sometimes as a multi-turn chat, and carries its own seed, temperature (0 for a share of
them), top-p, top-k and ``max_tokens``. The combination space is far too large to precompute, so a
miner can only answer by running the model. A generator built with a fixed seed replays the same
sequence (tests); the validator builds it with ``seed=None`` (seeded from the OS).

Sampling parameters are chosen so that verification has something to check at every temperature:
greedy challenges pin each token to the argmax, and sampled challenges always set a top-k (and
often a top-p below 1), so a token outside the filter is provably not sampled.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from enum import StrEnum

from neurons.scoring.config import ScoringConfig
from protocol.synapses import MAX_SEED, ChatMessage, InferenceRequest

__all__ = ["Challenge", "ChallengeGenerator", "TaskKind"]


class TaskKind(StrEnum):
    """What a challenge asks for (for logs and per-kind statistics)."""

    ARITHMETIC = "arithmetic"
    SORTING = "sorting"
    STORY = "story"
    EXPLAIN = "explain"
    REWRITE = "rewrite"
    LIST = "list"
    CODE = "code"
    MULTI_TURN = "multi_turn"


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: the request sent to a miner plus what the validator knows about it."""

    challenge_id: str
    """Random hex id, unique per challenge; also the engine request id."""
    kind: TaskKind
    request: InferenceRequest


_NOUNS = (
    "lighthouse",
    "glacier",
    "violin",
    "orchard",
    "satellite",
    "compass",
    "lantern",
    "harbor",
    "meadow",
    "library",
    "volcano",
    "bicycle",
    "telescope",
    "canyon",
    "river",
    "bakery",
    "museum",
    "forest",
    "robot",
    "garden",
    "island",
    "bridge",
    "market",
    "desert",
    "castle",
    "engine",
    "kettle",
    "mirror",
    "ladder",
    "comet",
    "village",
    "teacup",
    "puzzle",
    "tunnel",
    "piano",
    "ferry",
    "quarry",
    "beacon",
    "falcon",
)
_ADJECTIVES = (
    "quiet",
    "ancient",
    "bright",
    "curious",
    "frozen",
    "golden",
    "hidden",
    "noisy",
    "patient",
    "rusty",
    "silver",
    "tiny",
    "vast",
    "wandering",
    "brave",
    "gentle",
    "hollow",
    "restless",
    "velvet",
    "crooked",
)
_NAMES = (
    "Amara",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Freya",
    "Gustavo",
    "Hana",
    "Ivan",
    "Jonas",
    "Keiko",
    "Lior",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
)
_TOPICS = (
    "photosynthesis",
    "tides",
    "compound interest",
    "vaccines",
    "rainbows",
    "earthquakes",
    "inflation",
    "binary search",
    "the water cycle",
    "magnetism",
    "recycling",
    "sleep",
    "volcanoes",
    "bread rising",
    "public key cryptography",
    "gravity",
    "hash tables",
    "weather fronts",
    "bees",
    "batteries",
)
_AUDIENCES = ("a child", "a new employee", "a retired engineer", "a tourist", "a student", "a busy manager")
_STYLES = ("formal", "playful", "concise", "poetic", "friendly", "dramatic", "neutral")
_LANGUAGES = ("Python", "JavaScript", "Rust", "Go", "SQL", "Bash")
_SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer briefly.",
    "You are a patient tutor.",
    "You answer in plain language.",
)


class ChallengeGenerator:
    """Produces an endless sequence of distinct challenges.

    ``seed=None`` draws the stream's seed from the OS (what a validator wants); a fixed seed makes
    the sequence reproducible (what tests want). ``max_tokens`` lies in
    ``[config.min_new_tokens, config.max_new_tokens]``.
    """

    def __init__(self, seed: int | None = None, *, config: ScoringConfig | None = None) -> None:
        self._config = config or ScoringConfig()
        self._rng = random.Random(secrets.randbits(128) if seed is None else seed)

    def next(self) -> Challenge:
        """Build the next challenge; always ``stream=True``."""
        rng = self._rng
        kind = rng.choice(list(TaskKind))
        messages = self._messages(kind)
        cfg = self._config
        sampling = self._sampling()
        request = InferenceRequest(
            messages=messages,
            max_tokens=rng.randint(cfg.min_new_tokens, cfg.max_new_tokens),
            seed=rng.randint(0, MAX_SEED),
            stream=True,
            **sampling,
        )
        return Challenge(challenge_id=f"{rng.getrandbits(64):016x}", kind=kind, request=request)

    def _sampling(self) -> dict[str, float | int]:
        rng = self._rng
        if rng.random() < self._config.greedy_fraction:
            return {"temperature": 0.0, "top_p": 1.0, "top_k": 0}
        # Always a top-k (checked exactly, by rank); half the time also a top-p low enough that the
        # nucleus check (which needs ``top_p + nucleus_slack`` of provable mass) can fire.
        temperature = round(rng.uniform(0.3, 1.0), 2)
        top_k = rng.choice((20, 40, 50, 100))
        top_p = round(rng.uniform(0.7, 0.9), 2) if rng.random() < 0.5 else 1.0
        return {"temperature": temperature, "top_p": top_p, "top_k": top_k}

    def _messages(self, kind: TaskKind) -> list[ChatMessage]:
        rng = self._rng
        turns: list[ChatMessage] = []
        if rng.random() < 0.5:
            turns.append(ChatMessage(role="system", content=rng.choice(_SYSTEM_PROMPTS)))
        if kind is TaskKind.MULTI_TURN:
            for _ in range(rng.randint(1, 3)):
                inner = rng.choice([k for k in TaskKind if k is not TaskKind.MULTI_TURN])
                turns.append(ChatMessage(role="user", content=self._prompt(inner)))
                turns.append(ChatMessage(role="assistant", content=self._reply()))
            turns.append(ChatMessage(role="user", content=self._follow_up()))
        else:
            turns.append(ChatMessage(role="user", content=self._prompt(kind)))
        return turns

    def _prompt(self, kind: TaskKind) -> str:
        rng = self._rng
        noun, other = rng.sample(_NOUNS, 2)
        adjective, name = rng.choice(_ADJECTIVES), rng.choice(_NAMES)
        match kind:
            case TaskKind.ARITHMETIC:
                a, b, c = rng.randint(2, 9999), rng.randint(2, 999), rng.randint(2, 99)
                op1, op2 = rng.choice("+-*"), rng.choice("+-*")
                return f"{name} computes {a} {op1} {b} {op2} {c}. What is the result? Show your steps."
            case TaskKind.SORTING:
                values = [rng.randint(-500, 500) for _ in range(rng.randint(5, 12))]
                order = rng.choice(("ascending", "descending"))
                return f"Sort these numbers in {order} order: {', '.join(map(str, values))}."
            case TaskKind.STORY:
                words = rng.randint(30, 120)
                return (
                    f"Write a {rng.choice(_STYLES)} story of about {words} words about {name}, "
                    f"a {adjective} {noun}, and a {other}."
                )
            case TaskKind.EXPLAIN:
                return f"Explain {rng.choice(_TOPICS)} to {rng.choice(_AUDIENCES)} using a {noun} as an example."
            case TaskKind.REWRITE:
                sentence = (
                    f"The {adjective} {noun} near the {other} was seen by {name} at {rng.randint(1, 12)} o'clock."
                )
                return f"Rewrite this sentence in a {rng.choice(_STYLES)} tone: {sentence}"
            case TaskKind.LIST:
                return f"List {rng.randint(3, 9)} {adjective} names for a {noun} shop run by {name}."
            case TaskKind.CODE:
                n = rng.randint(2, 50)
                return (
                    f"In {rng.choice(_LANGUAGES)}, write a function `{noun}_{other}` that returns every "
                    f"multiple of {n} below {rng.randint(n + 1, 10_000)}."
                )
            case TaskKind.MULTI_TURN:
                return self._follow_up()

    def _reply(self) -> str:
        rng = self._rng
        words = rng.sample(_NOUNS + _ADJECTIVES, rng.randint(4, 10))
        return f"Here is a first answer ({rng.randint(1, 999)}): " + " ".join(words) + "."

    def _follow_up(self) -> str:
        rng = self._rng
        return rng.choice(
            (
                f"Now make it {rng.choice(_STYLES)} and mention a {rng.choice(_NOUNS)}.",
                f"Summarise that in {rng.randint(1, 5)} sentences.",
                f"Translate your last answer for {rng.choice(_AUDIENCES)}, adding the number {rng.randint(1, 10**6)}.",
                f"What would {rng.choice(_NAMES)} change about it? Give {rng.randint(2, 6)} points.",
            )
        )
