"""Cheating engines, for the demo and the adversarial tests: each one a way a dishonest miner might try
to earn rewards without running the model it claims, and each one a case verification must catch.

Every cheat wraps an honest :class:`~neurons.engines.base.Engine` and changes only ``generate``, so it
drops into a real miner (gateway and all) in place of the honest engine:

- serving a different model: :func:`build_impostor_model` writes a perturbed copy of a model folder
  (same tokenizer, different weights), to be served by an ordinary engine;
- :class:`RandomTokensEngine`: random token ids, with their true logprobs (it teacher-forces them
  through its own model), so only the rank and filter checks can catch it;
- :class:`InventedLogprobsEngine`: honest tokens, made-up logprobs and ranks;
- :class:`TruncatingEngine`: stops early, reporting ``length`` or claiming ``stop`` without EOS;
- :class:`ReplayEngine`: answers every request with the first answer it generated (a cache);
- :class:`SlowEngine`: pauses before every chunk (too slow, or past the validator's deadline);
- :class:`BufferingEngine`: sends the first token at once, then holds the rest and flushes it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from enum import StrEnum
from pathlib import Path

from neurons.engines.base import Engine, EngineInfo, GenerationRequest, ScoredPosition, TokenChunk
from protocol.synapses import ChatMessage, FinishReason

__all__ = [
    "BufferingEngine",
    "CheatKind",
    "InventedLogprobsEngine",
    "RandomTokensEngine",
    "ReplayEngine",
    "SlowEngine",
    "TruncatingEngine",
    "TruncationMode",
    "build_cheater",
    "build_impostor_model",
]


class _Wrapper:
    """Delegates every Engine operation to ``inner``; subclasses override ``generate``."""

    def __init__(self, inner: Engine) -> None:
        self._inner = inner

    @property
    def info(self) -> EngineInfo:
        return self._inner.info

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self._inner.encode_chat(messages)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._inner.decode(token_ids)

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int], k: int = 5) -> list[ScoredPosition]:
        return await self._inner.score(prompt_ids, completion_ids, k)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        async with contextlib.aclosing(self._inner.generate(request)) as stream:
            async for chunk in stream:
                yield chunk

    async def _honest(self, request: GenerationRequest) -> list[TokenChunk]:
        async with contextlib.aclosing(self._inner.generate(request)) as stream:
            return [chunk async for chunk in stream]


class RandomTokensEngine(_Wrapper):
    """Streams ``max_tokens`` random non-EOS token ids, one per chunk, claiming their true logprobs and ranks.

    The text of the whole completion comes with the last chunk, so the text always matches the ids.
    """

    def __init__(self, inner: Engine, *, seed: int = 0) -> None:
        super().__init__(inner)
        self._rng = random.Random(seed)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        info = self.info
        ids: list[int] = []
        while len(ids) < request.max_tokens:
            tid = self._rng.randrange(info.vocab_size)
            if tid not in info.eos_token_ids:
                ids.append(tid)
        scored = await self._inner.score(request.prompt_ids, ids, 1)
        for i, pos in enumerate(scored):
            last = i == len(scored) - 1
            yield TokenChunk(
                token_ids=(pos.token_id,),
                text=self.decode(ids) if last else "",
                logprobs=(pos.logprob,),
                ranks=(pos.rank,),
                finish_reason=FinishReason.LENGTH if last else None,
            )


class InventedLogprobsEngine(_Wrapper):
    """Honest tokens with a made-up, confident logprob (``claimed_logprob``) and rank 1 for each."""

    def __init__(self, inner: Engine, *, claimed_logprob: float = -0.05) -> None:
        super().__init__(inner)
        self._claimed = claimed_logprob

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        async with contextlib.aclosing(self._inner.generate(request)) as stream:
            async for chunk in stream:
                n = len(chunk.token_ids)
                yield TokenChunk(chunk.token_ids, chunk.text, (self._claimed,) * n, (1,) * n, chunk.finish_reason)


class TruncationMode(StrEnum):
    REPORT_LENGTH = "report_length"
    """Stop early and report ``length`` although ``max_tokens`` was not reached."""
    CLAIM_STOP = "claim_stop"
    """Stop early and claim ``stop`` although no EOS was produced."""


class TruncatingEngine(_Wrapper):
    """Keeps only the first ``keep_fraction`` of the honest tokens (at least one) and ends there."""

    def __init__(self, inner: Engine, *, mode: TruncationMode, keep_fraction: float = 0.5) -> None:
        super().__init__(inner)
        self._mode = mode
        self._keep_fraction = keep_fraction

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        keep = max(1, int(request.max_tokens * self._keep_fraction))
        eos = self.info.eos_token_ids
        sent = 0
        finish = FinishReason.LENGTH if self._mode is TruncationMode.REPORT_LENGTH else FinishReason.STOP
        async with contextlib.aclosing(self._inner.generate(request)) as stream:
            async for chunk in stream:
                ids = [t for t in chunk.token_ids if t not in eos][: keep - sent]
                n = len(ids)
                sent += n
                done = sent >= keep or chunk.finish_reason is not None
                yield TokenChunk(tuple(ids), chunk.text, chunk.logprobs[:n], chunk.ranks[:n], finish if done else None)
                if done:
                    return


class ReplayEngine(_Wrapper):
    """Generates honestly once, then answers every request with that cached answer."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self._cached: list[TokenChunk] | None = None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        if self._cached is None:
            self._cached = await self._honest(request)
        for chunk in self._cached:
            yield chunk


class SlowEngine(_Wrapper):
    """Honest output, but sleeps ``delay_s`` before every chunk."""

    def __init__(self, inner: Engine, *, delay_s: float) -> None:
        super().__init__(inner)
        self._delay_s = delay_s

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        async with contextlib.aclosing(self._inner.generate(request)) as stream:
            async for chunk in stream:
                await asyncio.sleep(self._delay_s)
                yield chunk


class BufferingEngine(_Wrapper):
    """Sends the first chunk at once (a flattering time to first token), holds the rest back until
    ``hold_s`` after the request started, then flushes it in one go: a stream that is not one."""

    def __init__(self, inner: Engine, *, hold_s: float) -> None:
        super().__init__(inner)
        self._hold_s = hold_s

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenChunk]:
        start = time.monotonic()
        async with contextlib.aclosing(self._inner.generate(request)) as stream:
            first = await anext(stream, None)
            if first is None:
                return
            yield first
            rest = [chunk async for chunk in stream]
        await asyncio.sleep(max(0.0, self._hold_s - (time.monotonic() - start)))
        for chunk in rest:
            yield chunk


def build_impostor_model(source: Path, dest: Path, *, noise_std: float = 0.02, seed: int = 1) -> Path:
    """Copy the model folder ``source`` to ``dest`` with Gaussian noise added to every weight tensor.

    The copy keeps the tokenizer, chat template and config, so it is served exactly like the real
    model and differs only in what it computes: a miner serving a cheaper or different model.
    Idempotent: a finished ``dest`` (marked by ``.impostor``, written last) is returned as it is, an
    interrupted one is rebuilt. Needs torch and safetensors (the ``cpu`` extra).
    """
    import torch
    from safetensors.torch import load_file, save_file

    source, dest = Path(source), Path(dest)
    if (dest / ".impostor").is_file():
        return dest
    shutil.copytree(source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))  # not source's markers
    generator = torch.Generator().manual_seed(seed)
    for path in sorted(dest.glob("*.safetensors")):
        tensors = load_file(path)
        noisy = {
            name: (t.float() + noise_std * torch.randn(t.shape, generator=generator)).to(t.dtype)
            if t.is_floating_point()
            else t
            for name, t in tensors.items()
        }
        save_file(noisy, path, metadata={"format": "pt"})
    (dest / ".impostor").write_text(f"noise_std={noise_std} seed={seed}\n")
    return dest


class CheatKind(StrEnum):
    """The engine-level cheats by name (for the demo's and tests' command lines)."""

    RANDOM_TOKENS = "random_tokens"
    INVENTED_LOGPROBS = "invented_logprobs"
    TRUNCATE_LENGTH = "truncate_length"
    TRUNCATE_STOP = "truncate_stop"
    REPLAY = "replay"
    SLOW = "slow"
    BUFFERING = "buffering"


def build_cheater(kind: CheatKind | str, inner: Engine, *, delay_s: float = 1.0) -> Engine:
    """Wrap the honest ``inner`` engine in the cheat ``kind``; ``delay_s`` paces ``slow`` and ``buffering``.

    Raises ``ValueError`` naming the valid kinds for an unknown one.
    """
    try:
        kind = CheatKind(kind)
    except ValueError:
        raise ValueError(f"unknown cheat {kind!r}; choose one of {', '.join(k.value for k in CheatKind)}") from None
    match kind:
        case CheatKind.RANDOM_TOKENS:
            return RandomTokensEngine(inner)
        case CheatKind.INVENTED_LOGPROBS:
            return InventedLogprobsEngine(inner)
        case CheatKind.TRUNCATE_LENGTH:
            return TruncatingEngine(inner, mode=TruncationMode.REPORT_LENGTH)
        case CheatKind.TRUNCATE_STOP:
            return TruncatingEngine(inner, mode=TruncationMode.CLAIM_STOP)
        case CheatKind.REPLAY:
            return ReplayEngine(inner)
        case CheatKind.SLOW:
            return SlowEngine(inner, delay_s=delay_s)
        case CheatKind.BUFFERING:
            return BufferingEngine(inner, hold_s=delay_s)
