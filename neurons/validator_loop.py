"""One validator step: challenge every serving miner, verify, score, maybe set weights, persist, log.

The loop holds no logic of its own beyond ordering: challenges come from
``neurons.challenges``, verification and rewards from ``neurons.scoring``, weight setting from
``neurons.weights``, persistence from ``neurons.state`` and logging from ``neurons.telemetry``.
State is saved after every step, so a crash loses at most the step in progress.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from neurons.challenges import Challenge, ChallengeGenerator
from neurons.engines.base import Engine, EngineError
from neurons.scoring.answer import verify_answer
from neurons.scoring.config import ScoringConfig
from neurons.scoring.rewards import Measurement, compute_rewards, weights_from_scores
from neurons.scoring.verify import Verdict, VerdictReason
from neurons.state import ValidatorState, save_state
from neurons.telemetry import ChallengeSample, UidStepMetrics, ValidatorMetrics, WandbRun
from neurons.weights import WeightSetter
from protocol.client import MinerClient, MinerTarget, QueryResult
from protocol.files import write_atomic

__all__ = ["StepSummary", "ValidatorLoop"]


@dataclass(frozen=True, slots=True)
class StepSummary:
    step: int
    queried: int
    verified: int
    weights_set: bool


class ValidatorLoop:
    """Runs steps against the miners in the chain's metagraph; see the module docstring."""

    def __init__(
        self,
        *,
        chain: Any,
        engine: Engine,
        client: MinerClient,
        setter: WeightSetter,
        state: ValidatorState,
        state_path: Path,
        scoring: ScoringConfig,
        self_uid: int,
        query_timeout_s: float,
        challenges: ChallengeGenerator,
        metrics: ValidatorMetrics,
        wandb_run: WandbRun | None = None,
        stats_window: int = 20,
        rng: random.Random | None = None,
    ) -> None:
        self._chain = chain
        self._engine = engine
        self._client = client
        self._setter = setter
        self.state = state
        self._state_path = state_path
        self._scoring = scoring
        self._self_uid = self_uid
        self._timeout_s = query_timeout_s
        self._challenges = challenges
        self._metrics = metrics
        self._wandb = wandb_run
        self._rng = rng or random.Random()
        self._ttft: defaultdict[int, deque[float]] = defaultdict(lambda: deque(maxlen=stats_window))
        self._tps: defaultdict[int, deque[float]] = defaultdict(lambda: deque(maxlen=stats_window))
        self._last_reason: dict[int, str] = {}
        self._last_weights: dict[int, float] = {}
        self.weight_sets = 0

    async def step(self) -> StepSummary:
        """Run one step; a broken miner only costs its own timeout."""
        metagraph = await self._chain.metagraph()
        replaced = self.state.sync_hotkeys({n.uid: n.hotkey for n in metagraph.neurons})
        for uid in replaced:
            logger.info("uid {} has a new hotkey: its score restarts from zero", uid)
            self._ttft.pop(uid, None)
            self._tps.pop(uid, None)
        serving = [n for n in metagraph.neurons if n.uid != self._self_uid and n.ip and n.port]
        sample = self._rng.sample(serving, min(len(serving), self._scoring.sample_size))
        challenges = [self._challenges.next() for _ in sample]
        targets = await asyncio.gather(*(self._target(n) for n in sample))
        results = await asyncio.gather(
            *(
                self._client.infer(target, ch.request, timeout_s=self._timeout_s)
                for target, ch in zip(targets, challenges, strict=True)
            )
        )
        judged = await asyncio.gather(*(self._verify(ch, r) for ch, r in zip(challenges, results, strict=True)))
        # Answers the validator could not judge (its own engine failed) are left out of this step.
        kept = [i for i, verdict in enumerate(judged) if verdict is not None]
        sample = [sample[i] for i in kept]
        challenges = [challenges[i] for i in kept]
        results = [results[i] for i in kept]
        verdicts = [judged[i] for i in kept]

        measurements = []
        for neuron, result, verdict in zip(sample, results, verdicts, strict=True):
            self._metrics.observe_query(ttft_s=result.ttft_s, total_s=result.total_s)
            self._metrics.observe_verdict(verdict.reason.value, verdict.verified)
            self._last_reason[neuron.uid] = verdict.reason.value if verdict.verified else _describe(verdict)
            if result.ok and result.ttft_s is not None and result.tokens_per_s is not None:
                self._ttft[neuron.uid].append(result.ttft_s)
                self._tps[neuron.uid].append(result.tokens_per_s)
            measurements.append(Measurement(neuron.uid, verdict.verified, result.tokens_per_s, result.ttft_s))
            speed = f"{result.tokens_per_s:.1f} tok/s" if result.tokens_per_s else "no timing"
            log = logger.info if verdict.verified else logger.warning
            log("uid {} {}: {} ({} tokens, {})", neuron.uid, verdict.reason.value, verdict.detail or "-",
                verdict.n_tokens, speed)  # fmt: skip

        rewards = compute_rewards(measurements, self._scoring)
        self.state.record_step(rewards, {m.uid: m.verified for m in measurements}, self._scoring.ema_alpha)
        vector = weights_from_scores(self.state.scores())
        weights = vector.as_dict() if vector is not None else {}
        outcome = await self._setter.maybe_set(weights or None)
        if outcome.success:
            self.weight_sets += 1
            self._last_weights = weights
            self.state.last_weights_block = await self._chain.block()
        elif outcome.attempted:
            logger.warning("weights not set this step, scores kept for the next try: {}", outcome.message)
        if outcome.blocks_since_last_update is not None:
            self._metrics.blocks_since_weights.set(0 if outcome.success else outcome.blocks_since_last_update)

        await asyncio.to_thread(save_state, self.state, self._state_path)
        self._metrics.steps.inc()
        self._metrics.set_scores(self.state.scores(), weights)
        await asyncio.to_thread(self._log_wandb, sample, challenges, results, verdicts, rewards, weights)
        await asyncio.to_thread(self._write_report, metagraph)
        return StepSummary(self.state.step, len(sample), sum(v.verified for v in verdicts), outcome.success)

    async def _target(self, neuron: Any) -> MinerTarget:
        """Where to query ``neuron``: HTTPS pinned to the key it published with ServeAxonTls, else HTTP."""
        try:
            certificate = await self._chain.certificate(neuron.hotkey)
        except Exception as exc:  # an unreadable certificate must not silently downgrade to plain HTTP
            logger.warning("cannot read uid {}'s certificate ({}); querying it without TLS", neuron.uid, exc)
            certificate = None
        if certificate:
            return MinerTarget(neuron.ip, neuron.port, neuron.hotkey, "https", certificate)
        return MinerTarget(neuron.ip, neuron.port, neuron.hotkey)

    async def _verify(self, challenge: Challenge, result: QueryResult) -> Verdict | None:
        """The verdict on one answer; ``None`` when the validator itself could not judge it."""
        if not result.ok or result.response is None:
            code = result.error.value if result.error else "no answer"
            return Verdict(False, VerdictReason.NO_RESPONSE, f"{code}: {result.message}"[:300])
        try:
            return await verify_answer(self._engine, challenge.request, result, self._scoring)
        except EngineError as exc:
            # The validator's own engine failed: not the miner's fault, so it must not cost the
            # miner anything either. The answer is skipped (no reward, no penalty) this step.
            logger.error("cannot verify: the validator's engine failed: {}", exc)
            return None

    def _log_wandb(self, sample, challenges, results, verdicts, rewards, weights) -> None:
        if self._wandb is None:
            return
        scores = self.state.scores()
        per_uid = [
            UidStepMetrics(
                uid=uid,
                verified_rate=rec.verified / rec.queries if rec.queries else 0.0,
                reward=rewards.get(uid, 0.0),
                ema=scores.get(uid, 0.0),
                weight=weights.get(uid, 0.0),
                ttft_s=_median(self._ttft.get(uid)),
                tokens_per_s=_median(self._tps.get(uid)),
            )
            for uid, rec in self.state.miners.items()
            if rec.queries
        ]
        rows = [
            ChallengeSample(
                uid=n.uid,
                kind=ch.kind.value,
                temperature=ch.request.temperature,
                prompt=ch.request.messages[-1].content,
                answer=r.response.text if r.response else f"<{r.error.value if r.error else 'none'}>",
                verified=v.verified,
                reason=v.reason.value,
            )
            for n, ch, r, v in list(zip(sample, challenges, results, verdicts, strict=True))[
                : self._scoring.table_rows_per_step
            ]
        ]
        try:
            self._wandb.log_step(self.state.step, per_uid, rows, weight_sets=float(self.weight_sets))
        except Exception as exc:  # telemetry must never stop validation
            logger.warning("wandb logging failed: {}", exc)

    def report(self, metagraph: Any) -> dict[str, Any]:
        """Per-uid summary for operators and the demo (``report.json`` beside the state file)."""
        scores = self.state.scores()
        neurons = {n.uid: n for n in metagraph.neurons}
        uids = {}
        for uid, rec in self.state.miners.items():
            if not rec.queries:
                continue
            neuron = neurons.get(uid)
            uids[str(uid)] = {
                "hotkey": rec.hotkey,
                "queries": rec.queries,
                "verified": rec.verified,
                "verified_pct": 100.0 * rec.verified / rec.queries,
                "ttft_s": _median(self._ttft.get(uid)),
                "tokens_per_s": _median(self._tps.get(uid)),
                "score": scores.get(uid, 0.0),
                "weight": self._last_weights.get(uid, 0.0),
                "incentive": neuron.incentive if neuron else 0.0,
                "last_reason": self._last_reason.get(uid, ""),
            }
        return {
            "step": self.state.step,
            "block": metagraph.block,
            "weight_sets": self.weight_sets,
            "last_weights_block": self.state.last_weights_block,
            "wandb_run_dir": str(self._wandb.run_dir) if self._wandb else None,
            "uids": uids,
        }

    def _write_report(self, metagraph: Any) -> None:
        path = self._state_path.with_name("report.json")
        write_atomic(path, json.dumps(self.report(metagraph), indent=2).encode(), durable=False)


def _median(values: deque[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _describe(verdict: Verdict) -> str:
    return f"{verdict.reason.value}: {verdict.detail}"[:200] if verdict.detail else verdict.reason.value
