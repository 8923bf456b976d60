"""The HF engine's model thread: one thread owns the model and interleaves requests fairly.

Scheduling: up to ``max_concurrency`` generation requests are active at once, each with its own
KV cache; every round gives each active request exactly one step (its prefill, or one decode
token), so a long request never starves a short one and each request computes exactly what it
would compute alone (same seed -> same tokens, whatever else runs). Later requests wait in a
FIFO queue; one pending ``score`` job runs between rounds. Results travel back to the caller's
event loop with ``call_soon_threadsafe``, so the loop never blocks on the model.

Failure model: an exception inside one request's step fails that request (``EngineError``);
an exception in the scheduler itself kills the worker, fails every request with
``EngineDeadError`` and makes later submissions fail the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from neurons.engines._detokenize import IncrementalDetokenizer
from neurons.engines._sampling import make_generator, ranks_of, sample_token
from neurons.engines.base import EngineDeadError, EngineError, GenerationRequest, ScoredPosition, TokenChunk
from protocol.synapses import FinishReason

__all__ = ["GenerateJob", "ModelWorker", "ScoreJob", "Sink"]


class Sink:
    """Delivers values from the model thread to one consumer on its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[Any], None]) -> None:
        self._loop = loop
        self._deliver = deliver

    def send(self, item: Any) -> bool:
        """Hand ``item`` over; ``False`` when the consumer's loop is gone."""
        try:
            self._loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:
            return False
        return True


@dataclass(eq=False)
class GenerateJob:
    request: GenerationRequest
    sink: Sink
    cancelled: threading.Event = field(default_factory=threading.Event)
    cache: Any = None
    generator: torch.Generator | None = None
    detokenizer: IncrementalDetokenizer | None = None
    produced: int = 0
    last_token: int = -1


@dataclass(eq=False)
class ScoreJob:
    input_ids: list[int]
    completion_ids: list[int]
    k: int
    sink: Sink
    cancelled: threading.Event = field(default_factory=threading.Event)


class ModelWorker:
    """Owns ``model`` on a dedicated thread; see the module docstring for the schedule."""

    def __init__(
        self,
        model: Any,
        *,
        decode: Callable[[Sequence[int]], str],
        eos_token_ids: frozenset[int],
        max_concurrency: int,
        name: str = "axongate-hf-engine",
    ) -> None:
        self._model = model
        self._decode = decode
        self._eos = eos_token_ids
        self._max_concurrency = max_concurrency
        # transformers >= 5.25 names the KV cache argument and output ``cache``; earlier 5.x ``past_key_values``.
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._cond = threading.Condition()
        self._pending: deque[GenerateJob] = deque()
        self._scores: deque[ScoreJob] = deque()
        self._active: list[GenerateJob] = []
        self._closing = False
        self._dead: BaseException | None = None
        self.tokens_generated = 0
        """Tokens sampled since start (written by the model thread only)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- submission (any thread) --------------------------------------------------------------

    def submit_generate(self, request: GenerationRequest, sink: Sink) -> GenerateJob:
        job = GenerateJob(request=request, sink=sink)
        self._enqueue(self._pending, job)
        return job

    def submit_score(self, input_ids: list[int], completion_ids: list[int], k: int, sink: Sink) -> ScoreJob:
        job = ScoreJob(input_ids=input_ids, completion_ids=completion_ids, k=k, sink=sink)
        self._enqueue(self._scores, job)
        return job

    def cancel(self, job: GenerateJob | ScoreJob) -> None:
        """Abort ``job``; its slot is freed before the next round."""
        job.cancelled.set()
        with self._cond:
            self._cond.notify()

    def in_flight(self) -> int:
        """Requests admitted or queued and not yet finished or cancelled."""
        with self._cond:
            jobs: list[GenerateJob | ScoreJob] = [*self._active, *self._pending, *self._scores]
        return sum(not job.cancelled.is_set() for job in jobs)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after the current step; fails queued and active requests. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _enqueue(self, queue: deque, job: GenerateJob | ScoreJob) -> None:
        with self._cond:
            if self._dead is not None:
                raise EngineDeadError(f"engine worker is dead: {self._dead}")
            if self._closing:
                raise EngineDeadError("engine is closed")
            queue.append(job)
            self._cond.notify()

    # -- the model thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with torch.inference_mode():
                while self._next_round():
                    pass
            self._fail_all(EngineDeadError("engine is closed"))
        except BaseException as exc:
            with self._cond:
                self._dead = exc
            self._fail_all(EngineDeadError(f"engine worker died: {exc!r}"))
            raise
        finally:
            self._model = None

    def _next_round(self) -> bool:
        with self._cond:
            while not (self._closing or self._pending or self._scores or self._active):
                self._cond.wait()
            if self._closing:
                return False
            self._active = [job for job in self._active if not job.cancelled.is_set()]
            while self._pending and len(self._active) < self._max_concurrency:
                job = self._pending.popleft()
                if not job.cancelled.is_set():
                    self._active.append(job)
            score = self._scores.popleft() if self._scores else None
            active = list(self._active)
        if score is not None and not score.cancelled.is_set():
            self._run_score(score)
        finished = [job for job in active if not job.cancelled.is_set() and self._step(job)]
        if finished:
            with self._cond:
                self._active = [job for job in self._active if job not in finished]
        return True

    def _step(self, job: GenerateJob) -> bool:
        """Advance ``job`` by one token; ``True`` when it is finished (or failed)."""
        request = job.request
        try:
            if job.cache is None:
                job.generator = make_generator(request.seed)
                job.detokenizer = IncrementalDetokenizer(self._decode)
                input_ids = torch.tensor([request.prompt_ids], dtype=torch.long)
            else:
                input_ids = torch.tensor([[job.last_token]], dtype=torch.long)
            out = self._model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **{self._cache_arg: job.cache})
            job.cache = getattr(out, self._cache_arg)
            logits = out.logits[0, -1].float()
            token = sample_token(
                logits,
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=request.top_k,
                generator=job.generator,
            )
            logprob = float(torch.log_softmax(logits, dim=-1)[token])
            rank = int(ranks_of(logits, torch.tensor(token)))
            job.last_token = token
            job.produced += 1
            self.tokens_generated += 1
            text = job.detokenizer.push(token)
            finish = None
            if token in self._eos:
                finish = FinishReason.STOP
            elif job.produced >= request.max_tokens:
                finish = FinishReason.LENGTH
            if finish is not None:
                text += job.detokenizer.flush()
                job.cache = None
            delivered = job.sink.send(TokenChunk((token,), text, (logprob,), (rank,), finish))
            return finish is not None or not delivered
        except Exception as exc:
            job.cache = None
            job.sink.send(EngineError(f"generation failed: {exc!r}"))
            return True

    def _run_score(self, job: ScoreJob) -> None:
        try:
            n = len(job.completion_ids)
            out = self._model(
                input_ids=torch.tensor([job.input_ids], dtype=torch.long), use_cache=False, logits_to_keep=n
            )
            logits = out.logits[0, -n:].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            targets = torch.tensor(job.completion_ids, dtype=torch.long)
            chosen = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).tolist()
            ranks = ranks_of(logits, targets).tolist()
            if job.k > 0:
                top = torch.topk(logprobs, job.k, dim=-1)
                top_ids, top_lps = top.indices.tolist(), top.values.tolist()
            else:
                top_ids = top_lps = [[] for _ in range(n)]
            result = [
                ScoredPosition(t, lp, r, tuple(ti), tuple(tl))
                for t, lp, r, ti, tl in zip(job.completion_ids, chosen, ranks, top_ids, top_lps, strict=True)
            ]
            job.sink.send(result)
        except Exception as exc:
            job.sink.send(EngineError(f"scoring failed: {exc!r}"))

    def _fail_all(self, error: EngineError) -> None:
        with self._cond:
            jobs: list[GenerateJob | ScoreJob] = [*self._active, *self._pending, *self._scores]
            self._active, self._pending, self._scores = [], deque(), deque()
        for job in jobs:
            job.sink.send(error)
