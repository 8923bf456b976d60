"""Verification benchmark and calibration.

``timing``: validator CPU cost per verified token (``verify_answer``: encode, cheap checks, one
teacher-forced ``Engine.score`` prefill) against miner CPU cost per generated token
(``Engine.generate``), same engine and model, side by side in one process, medians over several
runs. Target: ratio <= 0.1.

``calibrate``: runs honest challenges (miner engine generates, validator engine teacher-forces)
and reports what the thresholds in ``ScoringConfig`` must tolerate: |claimed - validator| logprob
per token, greedy near-ties, ranks against top-k, nucleus mass, plus every verdict. With
``--miner-dtype bfloat16`` the miner runs in bf16 while the validator stays fp32 (the cross-precision
gap a vLLM bf16 miner brings).

    python scripts/bench/verify.py timing --model tiny --runs 5
    python scripts/bench/verify.py calibrate --model tiny --challenges 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter

from neurons.challenges import ChallengeGenerator
from neurons.engines.config import EngineConfig
from neurons.engines.hf import HfEngine
from neurons.models import resolve_model
from neurons.scoring import ScoringConfig, answer_locally, required_top_k, scaled_mass_above, verify, verify_answer
from neurons.settings import default_home
from protocol.synapses import InferenceRequest


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50": pick(0.5), "p99": pick(0.99), "max": ordered[-1]}


async def _calibrate(args: argparse.Namespace) -> dict:
    folder = resolve_model(args.model, default_home(), progress=False)
    validator = HfEngine.load(folder, EngineConfig(model=str(folder), threads=args.threads))
    miner = (
        HfEngine.load(folder, EngineConfig(model=str(folder), dtype=args.miner_dtype, threads=args.threads))
        if args.miner_dtype != "float32"
        else validator
    )
    config = ScoringConfig(max_new_tokens=args.max_new_tokens)
    generator = ChallengeGenerator(args.seed, config=config)
    errors: list[float] = []
    greedy_gaps: list[float] = []
    topk_excess: list[float] = []
    nucleus_ratio: list[float] = []
    answer_means: list[float] = []
    verdicts: Counter[str] = Counter()
    failures: list[str] = []
    tokens = 0
    for _ in range(args.challenges):
        request = generator.next().request
        local = await answer_locally(miner, request)
        ids = local.response.token_ids
        positions = await validator.score(local.prompt_ids, ids, required_top_k(request, config))
        info = validator.info
        verdict = verify(
            request, local.prompt_ids, local, positions,
            eos_ids=info.eos_token_ids, vocab_size=info.vocab_size, decode=validator.decode, config=config,
        )  # fmt: skip
        verdicts[verdict.reason.value] += 1
        if not verdict.verified:
            failures.append(f"{verdict.reason.value}: {verdict.detail} (T={request.temperature})")
        tokens += len(ids)
        answer_means.append(verdict.mean_logprob_error)
        for claimed, pos in zip(local.response.logprobs, positions, strict=True):
            errors.append(abs(claimed - pos.logprob))
            _collect(request, pos, info.vocab_size, config, greedy_gaps, topk_excess, nucleus_ratio)
    await validator.aclose()
    if miner is not validator:
        await miner.aclose()
    return {
        "model": args.model,
        "miner_dtype": args.miner_dtype,
        "challenges": args.challenges,
        "tokens": tokens,
        "verdicts": dict(verdicts),
        "failures": failures[:20],
        "abs_logprob_error_nats": _percentiles(errors),
        "mean_abs_logprob_error_per_answer_nats": _percentiles(answer_means),
        "greedy_gap_to_argmax_nats_when_not_rank1": _percentiles(greedy_gaps),
        "topk_rank_excess_nats": _percentiles(topk_excess),
        "nucleus_mass_above_over_top_p": _percentiles(nucleus_ratio),
    }


def _collect(request: InferenceRequest, pos, vocab_size, config, greedy_gaps, topk_excess, nucleus_ratio) -> None:
    if request.temperature == 0:
        if pos.rank > 1 and pos.top_logprobs:
            greedy_gaps.append(pos.top_logprobs[0] - pos.logprob)
        return
    if request.top_k and pos.rank > request.top_k and len(pos.top_logprobs) >= request.top_k:
        topk_excess.append(pos.top_logprobs[request.top_k - 1] - pos.logprob)
    if request.top_p < 1.0:
        above = scaled_mass_above(pos, request.temperature, vocab_size, config.filter_margin_nats)
        nucleus_ratio.append(above / request.top_p)


async def _timing(args: argparse.Namespace) -> dict:
    folder = resolve_model(args.model, default_home(), progress=False)
    engine = HfEngine.load(folder, EngineConfig(model=str(folder), threads=args.threads))
    config = ScoringConfig(max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens)
    generator = ChallengeGenerator(
        args.seed,
        config=ScoringConfig(
            greedy_fraction=1.0, max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens
        ),
    )
    ratios, gen_per_tok, score_per_tok = [], [], []
    warm = generator.next().request  # the first calls pay one-off costs (allocations, caches); not measured
    await verify_answer(engine, warm, await answer_locally(engine, warm), config)
    for _ in range(args.runs):
        request = generator.next().request
        gen_cpu, gen_wall = time.process_time(), time.perf_counter()
        local = await answer_locally(engine, request)
        gen_cpu, gen_wall = time.process_time() - gen_cpu, time.perf_counter() - gen_wall
        ids = local.response.token_ids
        score_cpu, score_wall = time.process_time(), time.perf_counter()
        verdict = await verify_answer(engine, request, local, config)
        score_cpu, score_wall = time.process_time() - score_cpu, time.perf_counter() - score_wall
        if not verdict.verified:
            raise SystemExit(f"an honest answer failed verification: {verdict}")
        n = len(ids)
        gen_per_tok.append(gen_cpu / n)
        score_per_tok.append(score_cpu / n)
        ratios.append(score_cpu / gen_cpu)
        print(f"  run: {n} tokens, generate {gen_wall:.3f}s wall / {gen_cpu:.3f}s cpu, "
              f"score {score_wall:.3f}s wall / {score_cpu:.3f}s cpu", file=sys.stderr)  # fmt: skip
    await engine.aclose()
    return {
        "model": args.model,
        "runs": args.runs,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "miner_generate_cpu_ms_per_token_median": 1e3 * statistics.median(gen_per_tok),
        "validator_verify_cpu_ms_per_token_median": 1e3 * statistics.median(score_per_tok),
        "verify_over_generate_median": statistics.median(ratios),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("timing", "calibrate"):
        p = sub.add_parser(name)
        p.add_argument("--model", default="tiny", help="tiny, smollm2 or a model folder")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=None)
        p.add_argument("--max-new-tokens", type=int, default=64)
    sub.choices["timing"].add_argument("--runs", type=int, default=5)
    sub.choices["calibrate"].add_argument("--challenges", type=int, default=300)
    sub.choices["calibrate"].add_argument("--miner-dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()
    result = asyncio.run(_timing(args) if args.mode == "timing" else _calibrate(args))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
