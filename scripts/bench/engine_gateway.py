"""Gateway overhead on a real engine: output tokens/s and TTFT through the gateway vs the engine direct.

The same engine instance serves both modes, alternating round by round with the same seeded
prompts, so drifting load hits both alike; medians over rounds are reported, with the gateway
as a ratio of direct. Direct: ``engine.generate`` called in-process. Gateway: the miner's own
stack (``EngineService`` + ``create_app`` + uvicorn on 127.0.0.1) queried by ``MinerClient`` with
signed, streamed requests, exactly as a validator would.

    .venv/bin/python scripts/bench/engine_gateway.py --engine hf --model tiny --concurrency 1 4 --tokens 32
    .venv-gpu/bin/python scripts/bench/engine_gateway.py --engine vllm --model smollm2 --concurrency 1 16 64

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bittensor.sp_core import Keypair  # noqa: E402
from engines import PROMPTS  # noqa: E402

from gateway.app import create_app  # noqa: E402
from gateway.config import GatewayConfig, PolicyConfig  # noqa: E402
from gateway.policy import Policy, StaticMetagraphView  # noqa: E402
from gateway.server import GatewayServer  # noqa: E402
from neurons import __version__  # noqa: E402
from neurons.engines import EngineConfig, GenerationRequest, build_engine  # noqa: E402
from neurons.engines.base import Engine  # noqa: E402
from neurons.serving import EngineService  # noqa: E402
from neurons.settings import default_home  # noqa: E402
from protocol.client import MinerClient, MinerTarget  # noqa: E402
from protocol.synapses import ChatMessage, InferenceRequest  # noqa: E402


def _requests(n: int, tokens: int, round_index: int) -> list[InferenceRequest]:
    return [
        InferenceRequest(
            messages=[ChatMessage(role="user", content=PROMPTS[i % len(PROMPTS)])],
            max_tokens=tokens,
            temperature=0.8,
            top_k=50,
            seed=round_index * 10_000 + i,
            stream=True,
        )
        for i in range(n)
    ]


async def _direct(engine: Engine, requests: list[InferenceRequest]) -> tuple[int, list[float], float]:
    async def one(request: InferenceRequest) -> tuple[int, float]:
        prompt = engine.encode_chat(request.messages)
        generation = GenerationRequest(
            prompt_ids=tuple(prompt), max_tokens=request.max_tokens, temperature=request.temperature,
            top_k=request.top_k, seed=request.seed,
        )  # fmt: skip
        start, ttft, count = time.monotonic(), None, 0
        async for chunk in engine.generate(generation):
            if ttft is None and chunk.token_ids:
                ttft = time.monotonic() - start
            count += len(chunk.token_ids)
        return count, ttft or 0.0

    start = time.monotonic()
    done = await asyncio.gather(*(one(r) for r in requests))
    return sum(c for c, _ in done), [t for _, t in done], time.monotonic() - start


async def _through_gateway(
    client: MinerClient, target: MinerTarget, requests: list[InferenceRequest]
) -> tuple[int, list[float], float]:
    start = time.monotonic()
    results = await asyncio.gather(*(client.infer(target, r, timeout_s=600) for r in requests))
    elapsed = time.monotonic() - start
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{len(failed)} gateway requests failed, first: {failed[0].error} {failed[0].message}")
    return sum(len(r.response.token_ids) for r in results), [r.ttft_s or 0.0 for r in results], elapsed


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    config = EngineConfig(
        kind=args.engine, model=args.model, threads=args.threads, max_concurrency=max(args.concurrency)
    )
    engine = build_engine(config, args.home, progress=True)
    miner, validator = Keypair.create_from_uri("//BenchMiner"), Keypair.create_from_uri("//BenchValidator")
    app = create_app(
        EngineService(engine, version=__version__),
        hotkey_ss58=miner.ss58_address,
        config=GatewayConfig(port=0, max_in_flight=4096),
        policy=Policy(
            PolicyConfig(rate_per_s=1e6, burst=1_000_000, max_concurrent_per_hotkey=4096),
            StaticMetagraphView.of_validators([validator.ss58_address]),
        ),
    )
    summary: dict[str, Any] = {"engine": args.engine, "model": args.model, "tokens": args.tokens, "levels": {}}
    async with GatewayServer(app, port=0) as server, MinerClient(validator) as client:
        target = MinerTarget("127.0.0.1", server.port, miner.ss58_address)
        await _through_gateway(client, target, _requests(2, 4, 999))  # warm-up both paths
        await _direct(engine, _requests(2, 4, 999))
        for level in args.concurrency:
            rows: dict[str, dict[str, list[float]]] = {m: {"tps": [], "ttft": []} for m in ("direct", "gateway")}
            for round_index in range(args.rounds):
                order = ("direct", "gateway") if round_index % 2 == 0 else ("gateway", "direct")
                for mode in order:
                    requests = _requests(level, args.tokens, round_index)
                    if mode == "direct":
                        tokens, ttfts, elapsed = await _direct(engine, requests)
                    else:
                        tokens, ttfts, elapsed = await _through_gateway(client, target, requests)
                    rows[mode]["tps"].append(tokens / elapsed)
                    rows[mode]["ttft"].append(statistics.median(ttfts))
            med = {m: {k: statistics.median(v) for k, v in r.items()} for m, r in rows.items()}
            summary["levels"][str(level)] = {
                **med,
                "tps_ratio_gateway_over_direct": med["gateway"]["tps"] / med["direct"]["tps"],
            }
            d, g = med["direct"], med["gateway"]
            print(
                f"concurrency {level:>3}: direct {d['tps']:8.1f} tok/s ttft {d['ttft'] * 1e3:7.1f} ms | "
                f"gateway {g['tps']:8.1f} tok/s ttft {g['ttft'] * 1e3:7.1f} ms | ratio {g['tps'] / d['tps']:.3f}",
                flush=True,
            )
    await engine.aclose()
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--home", type=Path, default=default_home())
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="hf engine torch threads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    summary = asyncio.run(_bench(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
