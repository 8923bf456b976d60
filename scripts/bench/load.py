"""Sustained load on a real gateway process: errors, throughput, latency and memory growth.

A gateway process (uvicorn, one worker, an instant fake service that answers 8 tokens, unary or
streamed) serves on 127.0.0.1; this process runs ``--concurrency`` workers that each send
btauth/1-signed requests through ``MinerClient`` back to back for ``--duration-s`` seconds.

Two variants run side by side, alternating for ``--rounds`` rounds, each against a fresh
gateway process: ``signed`` (the miner signs every answer, axongate-response/1, and the client
verifies each signature) and ``unsigned`` (the reference: same gateway, no response signing, no
verification). Reported per variant (medians over rounds): errors (must be 0), requests/s,
client-side p50/p99 latency, gateway CPU per request, and the gateway's resident memory after a
warm-up vs at the end (growth must stay within 10%). Ratios are signed/unsigned.

The warm-up (``--warmup-s``, default 65 s) runs the same load before measuring: the replay caches
keep every accepted nonce for 60 s, so they grow with the request rate until then and stay flat
after; measuring from a full cache separates that bounded working set from a leak. The memory
right after start-up is reported too.

    .venv/bin/python scripts/bench/load.py --duration-s 60 --concurrency 256 --rounds 1
    .venv/bin/python scripts/bench/load.py --json ...   # one JSON object on stdout (used by the tests)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO))

VALIDATOR_URI = "//Alice"
MINER_URI = "//Bob"
VARIANTS = ("signed", "unsigned")
MAX_RSS_GROWTH = 0.10
_TOKENS = 8


def _serve(signed: bool, stream_chunks: bool) -> None:
    """Run the gateway until stdin closes; print ``READY <port>`` once it accepts connections."""
    import bittensor as bt

    from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
    from protocol.synapses import CapabilitiesResponse, FinishReason, InferenceChunk, InferenceRequest, Usage

    miner = bt.sp_core.Keypair.create_from_uri(MINER_URI)
    validator = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI).ss58_address

    class InstantService:
        """Answers every request at once with ``_TOKENS`` tokens (one chunk per token when streaming)."""

        async def capabilities(self) -> CapabilitiesResponse:
            return CapabilitiesResponse(
                model="instant", weights_sha256="0" * 64, engine="fake", context_length=2048, version="bench"
            )

        async def infer(self, request: InferenceRequest) -> AsyncIterator[InferenceChunk]:
            steps = _TOKENS if stream_chunks else 1
            per_step = _TOKENS // steps
            for step in range(steps):
                last = step == steps - 1
                ids = [100 + step * per_step + i for i in range(per_step)]
                yield InferenceChunk(
                    token_ids=ids, logprobs=[-0.1] * len(ids), ranks=[1] * len(ids), text=" tok" * len(ids),
                    finish_reason=FinishReason.LENGTH if last else None,
                    usage=Usage(prompt_tokens=4, completion_tokens=_TOKENS) if last else None,
                )  # fmt: skip

    policy = Policy(
        PolicyConfig(rate_per_s=1e9, burst=10**9, max_concurrent_per_hotkey=10**6),
        StaticMetagraphView.of_validators([validator]),
    )
    app = create_app(
        InstantService(),
        hotkey_ss58=miner.ss58_address,
        config=GatewayConfig(port=0, max_in_flight=1024),
        policy=policy,
        signer=miner if signed else None,
    )

    async def run() -> None:
        server = GatewayServer(app, "127.0.0.1", 0, grace_s=1.0)
        await server.start()
        print(f"READY {server.port}", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the parent closes stdin to stop us
        await server.stop()

    asyncio.run(run())


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    port: int, *, signed: bool, stream: bool, concurrency: int, duration_s: float, warmup_s: float, pid: int
) -> dict[str, Any]:
    import bittensor as bt

    from protocol.client import MinerClient, MinerTarget
    from protocol.synapses import ChatMessage, InferenceRequest

    validator = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI)
    target = MinerTarget("127.0.0.1", port, bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address)
    request = InferenceRequest(messages=[ChatMessage(role="user", content="load")], max_tokens=_TOKENS, stream=stream)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counting = False

    async def worker(client: MinerClient, until: float) -> None:
        while time.monotonic() < until:
            started = time.monotonic()
            result = await client.infer(target, request, timeout_s=30.0)
            if not counting:
                continue
            if result.ok:
                latencies.append(time.monotonic() - started)
            else:
                key = f"{result.error}: {result.message[:80]}"
                errors[key] = errors.get(key, 0) + 1

    async with MinerClient(validator, max_connections=concurrency, verify_responses=signed) as client:
        rss_ready_kib = _rss_kib(pid)
        await asyncio.gather(*(worker(client, time.monotonic() + warmup_s) for _ in range(concurrency)))
        rss_start_kib, cpu_start_s = _rss_kib(pid), _cpu_s(pid)
        counting = True
        started = time.monotonic()
        await asyncio.gather(*(worker(client, started + duration_s) for _ in range(concurrency)))
        elapsed_s = time.monotonic() - started
        rss_end_kib, cpu_end_s = _rss_kib(pid), _cpu_s(pid)
    done = len(latencies) + sum(errors.values())
    latencies.sort()
    return {
        "requests": done,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "requests_per_s": done / elapsed_s,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None,
        "server_cpu_ms_per_request": 1000 * (cpu_end_s - cpu_start_s) / max(done, 1),
        "rss_ready_mib": rss_ready_kib / 1024,
        "rss_start_mib": rss_start_kib / 1024,
        "rss_end_mib": rss_end_kib / 1024,
        "rss_growth": (rss_end_kib - rss_start_kib) / rss_start_kib,
    }


async def _one_round(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--serve", variant] + (["--stream"] if args.stream else [])
    process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_REPO)
    assert process.stdout is not None and process.stdin is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"gateway did not start: {line!r}")
        return await _load(
            int(line.split()[1]),
            signed=variant == "signed",
            stream=args.stream,
            concurrency=args.concurrency,
            duration_s=args.duration_s,
            warmup_s=args.warmup_s,
            pid=process.pid,
        )
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    for _ in range(args.rounds):
        for variant in args.variants:
            runs[variant].append(await _one_round(variant, args))
    summary: dict[str, Any] = {
        "duration_s": args.duration_s,
        "warmup_s": args.warmup_s,
        "concurrency": args.concurrency,
        "stream": args.stream,
        "rounds": args.rounds,
    }
    for variant, results in runs.items():
        summary[variant] = {
            "errors": sum(r["errors"] for r in results),
            "error_kinds": [r["error_kinds"] for r in results if r["error_kinds"]],
            "max_rss_growth": max(r["rss_growth"] for r in results),
            **{
                key: statistics.median(r[key] for r in results)
                for key in (
                    "requests",
                    "requests_per_s",
                    "p50_ms",
                    "p99_ms",
                    "server_cpu_ms_per_request",
                    "rss_ready_mib",
                    "rss_start_mib",
                    "rss_end_mib",
                )
            },
        }
    if set(VARIANTS) <= set(runs):
        signed, unsigned = summary["signed"], summary["unsigned"]
        summary["ratio_requests_per_s"] = signed["requests_per_s"] / unsigned["requests_per_s"]
        summary["ratio_server_cpu_per_request"] = (
            signed["server_cpu_ms_per_request"] / unsigned["server_cpu_ms_per_request"]
        )
    summary["ok"] = all(
        summary[v]["errors"] == 0 and summary[v]["max_rss_growth"] <= MAX_RSS_GROWTH for v in args.variants
    )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup-s", type=float, default=65.0, help="load before measuring (see above)")
    parser.add_argument("--stream", action="store_true", help="stream one chunk per token instead of unary")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve == "signed", args.stream)
        return 0
    summary = asyncio.run(_bench(args))
    if args.json:
        print(json.dumps(summary))
        return 0 if summary["ok"] else 1
    print(f"{args.duration_s:g}s x {args.rounds} rounds at concurrency {args.concurrency}, "
          f"{'streamed' if args.stream else 'unary'} {_TOKENS}-token answers (medians)")  # fmt: skip
    print(f"(after {args.warmup_s:g}s of warm-up at the same load)")
    print("variant   errors  req/s   p50 ms  p99 ms  server CPU ms/req  RSS ready / warm -> end MiB (growth)")
    for variant in args.variants:
        s = summary[variant]
        print(
            f"{variant:9} {s['errors']:6d} {s['requests_per_s']:7.0f} {s['p50_ms']:7.1f} {s['p99_ms']:7.1f} "
            f"{s['server_cpu_ms_per_request']:18.3f}  {s['rss_ready_mib']:.1f} / {s['rss_start_mib']:.1f} -> "
            f"{s['rss_end_mib']:.1f} "
            f"({100 * s['max_rss_growth']:+.1f}%)"
        )
        for kinds in s["error_kinds"]:
            print(f"  errors: {kinds}")
    if "ratio_requests_per_s" in summary:
        print(f"signed/unsigned: requests/s x{summary['ratio_requests_per_s']:.2f}, "
              f"server CPU per request x{summary['ratio_server_cpu_per_request']:.2f}")  # fmt: skip
    print("PASS" if summary["ok"] else "FAIL: errors or memory growth above 10%")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
