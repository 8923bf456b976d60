"""Engine speed: decode tokens/s, TTFT and load time of one or more engine variants, side by side.

Each variant is a full ``EngineConfig`` (kind, model, dtype, attention kernel). The first variant
is the reference; the others are reported as ratios against it. Every variant serves the same
seeded requests, alternating for several rounds, so drifting machine load hits all of them
alike; medians over rounds are reported. Concurrency 1 measures per-request speed; higher
concurrency measures aggregate throughput (the HF engine interleaves requests step by step).

    .venv/bin/python scripts/bench/engines.py --variants hf:smollm2:float32:eager hf:smollm2:float32:sdpa \
        hf:smollm2:bfloat16:eager --tokens 64 --rounds 3
    .venv/bin/python scripts/bench/engines.py --variants vllm:smollm2 hf:smollm2:float32:eager --concurrency 1 16 64

Variant syntax: ``kind:model[:dtype[:attention]]`` (dtype/attention apply to ``hf``).
Writes the summary as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO))

from neurons.engines import EngineConfig, GenerationRequest, build_engine  # noqa: E402
from neurons.engines.base import Engine  # noqa: E402
from neurons.settings import default_home  # noqa: E402
from protocol.synapses import ChatMessage  # noqa: E402


def report(summary: dict[str, Any], out: Path | None) -> None:
    """Print the summary JSON, and write it to ``out`` when given (shared by the engine benches)."""
    text = json.dumps(summary, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


PROMPTS = (
    "Write a long story about a fox who learns to sail.",
    "Explain in detail how a bicycle works.",
    "Describe a walk through a busy market in the morning.",
    "Give a detailed history of the printing press.",
)


def parse_variant(spec: str, threads: int | None, concurrency: int) -> EngineConfig:
    parts = spec.split(":")
    kind, model = parts[0], parts[1]
    options: dict[str, Any] = {"kind": kind, "model": model, "max_concurrency": max(concurrency, 1)}
    if kind == "hf":
        options["threads"] = threads
        if len(parts) > 2:
            options["dtype"] = parts[2]
        if len(parts) > 3:
            options["attn_implementation"] = parts[3]
    return EngineConfig(**options)


async def start_engine(config: EngineConfig, home: Path) -> Engine:
    """Build off the loop for hf; on the loop's thread for vllm (AsyncLLM binds to the running loop)."""
    if config.kind == "vllm":
        return build_engine(config, home, progress=True)
    return await asyncio.to_thread(build_engine, config, home, progress=True)


async def one_request(engine: Engine, prompt_ids: list[int], tokens: int, seed: int) -> dict[str, float]:
    request = GenerationRequest(tuple(prompt_ids), max_tokens=tokens, temperature=0.7, seed=seed)
    started = time.perf_counter()
    first = last = started
    count = 0
    async for chunk in engine.generate(request):
        now = time.perf_counter()
        if count == 0:
            first = now
        last = now
        count += len(chunk.token_ids)
    return {"tokens": count, "ttft_s": first - started, "total_s": last - started, "decode_s": last - first}


async def run_round(engine: Engine, tokens: int, concurrency: int, seed: int) -> dict[str, float]:
    prompts = [engine.encode_chat([ChatMessage(role="user", content=PROMPTS[i % len(PROMPTS)])]) for i in range(4)]
    started = time.perf_counter()
    results = await asyncio.gather(
        *(one_request(engine, prompts[i % len(prompts)], tokens, seed + i) for i in range(concurrency))
    )
    wall_s = time.perf_counter() - started
    total_tokens = sum(r["tokens"] for r in results)
    decode = [(r["tokens"] - 1) / r["decode_s"] for r in results if r["tokens"] > 1 and r["decode_s"] > 0]
    return {
        "aggregate_tokens_per_s": total_tokens / wall_s,
        "per_request_decode_tokens_per_s": statistics.median(decode) if decode else 0.0,
        "median_ttft_s": statistics.median(r["ttft_s"] for r in results),
        "tokens": total_tokens,
    }


async def bench(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    engines: dict[str, Engine] = {}
    load_s: dict[str, float] = {}
    top_concurrency = max(args.concurrency)
    for spec in args.variants:
        config = parse_variant(spec, args.threads, top_concurrency)
        started = time.perf_counter()
        engines[spec] = await start_engine(config, home)
        load_s[spec] = time.perf_counter() - started
        await run_round(engines[spec], 4, 1, seed=0)  # warm-up (kernels, caches)
    rows: dict[str, dict[int, list[dict[str, float]]]] = {s: {c: [] for c in args.concurrency} for s in engines}
    for round_index in range(args.rounds):
        for concurrency in args.concurrency:
            for spec, engine in engines.items():
                result = await run_round(engine, args.tokens, concurrency, seed=1000 * round_index)
                rows[spec][concurrency].append(result)
                print(f"round {round_index} c={concurrency} {spec}: {result}", file=sys.stderr, flush=True)
    for engine in engines.values():
        await engine.aclose()
    reference = args.variants[0]
    summary: dict[str, Any] = {"reference": reference, "tokens": args.tokens, "rounds": args.rounds, "variants": {}}
    for spec in engines:
        per_concurrency = {}
        for concurrency, results in rows[spec].items():
            median = {key: statistics.median(r[key] for r in results) for key in results[0]}
            ref = statistics.median(r["aggregate_tokens_per_s"] for r in rows[reference][concurrency])
            median["aggregate_ratio_vs_reference"] = median["aggregate_tokens_per_s"] / ref
            per_concurrency[str(concurrency)] = median
        summary["variants"][spec] = {"load_s": load_s[spec], "by_concurrency": per_concurrency}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["hf:smollm2:float32:eager", "hf:smollm2:float32:sdpa"])
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for hf variants")
    parser.add_argument("--home", default=None, help="data directory holding prepared models")
    parser.add_argument("--out", type=Path, default=None, help="write the summary JSON here")
    args = parser.parse_args()
    home = Path(args.home).expanduser() if args.home else default_home()
    summary = asyncio.run(bench(args, home))
    report(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
