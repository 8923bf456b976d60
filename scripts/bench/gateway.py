"""Gateway throughput with btauth/1 verification vs the same route without it, side by side.

Two server processes, one uvicorn worker each, run the same ``create_app`` around an instant echo
service on 127.0.0.1: ``auth`` verifies every request (signature + replay store), ``noauth`` has
the authenticator replaced through ``app.dependency_overrides`` (policy, parsing, metrics and the
service path stay). One load process sends a fixed number of unary requests at fixed concurrency
to each in turn, alternating for several rounds; requests are signed before each timed run so the
load generator does identical work for both. Prints medians and the auth/noauth ratio.

    .venv/bin/python scripts/bench/gateway.py --requests 2000 --concurrency 32 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

# This script shares its name with the package it measures: keep its folder off the import path
# and import the working tree's packages.
_REPO = Path(__file__).resolve().parents[2]
sys.path[:] = [str(_REPO)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

VALIDATOR_URI = "//Alice"
MINER_URI = "//Bob"
VARIANTS = ("auth", "noauth")


def _serve(variant: str, port: int) -> None:
    """Server process: the gateway app for ``variant`` under one uvicorn worker."""
    import bittensor as bt
    import uvicorn

    from gateway import Caller, GatewayConfig, Policy, PolicyConfig, StaticMetagraphView, create_app
    from protocol.synapses import CapabilitiesResponse, FinishReason, InferenceChunk, InferenceRequest, Usage

    validator = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI).ss58_address
    miner = bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address

    class EchoService:
        async def capabilities(self) -> CapabilitiesResponse:
            return CapabilitiesResponse(
                model="echo", weights_sha256="0" * 64, engine="echo", context_length=2048, version="bench"
            )

        async def infer(self, request: InferenceRequest) -> AsyncIterator[InferenceChunk]:
            yield InferenceChunk(
                token_ids=[7],
                logprobs=[0.0],
                ranks=[1],
                text=request.messages[-1].content[:16],
                finish_reason=FinishReason.LENGTH,
                usage=Usage(prompt_tokens=1, completion_tokens=1),
            )

    policy = Policy(
        PolicyConfig(rate_per_s=1e9, burst=10**9, max_concurrent_per_hotkey=1024),
        StaticMetagraphView.of_validators([validator]),
    )
    app = create_app(
        EchoService(), hotkey_ss58=miner, config=GatewayConfig(port=port, max_in_flight=4096), policy=policy
    )
    if variant == "noauth":
        fixed = Caller(hotkey_ss58=validator, scheme="none", nonce="0")
        app.dependency_overrides[app.state.authenticator] = lambda: fixed
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_ready(port: int, timeout_s: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not become ready")


async def _run_load(port: int, *, requests: int, concurrency: int) -> dict[str, float]:
    """Send ``requests`` pre-signed unary requests at ``concurrency``; return rate and latency."""
    import bittensor as bt
    import httpx
    from bittensor import http_auth

    from protocol.synapses import ChatMessage, InferenceRequest

    keypair = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI)
    miner = bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address
    body = InferenceRequest(messages=[ChatMessage(role="user", content="ping")], max_tokens=1).model_dump_json()
    payload = body.encode()
    signed = [
        {
            **http_auth.sign(keypair, method="POST", path="/Inference", body=payload, receiver_ss58=miner),
            "content-type": "application/json",
        }
        for _ in range(requests)
    ]
    latencies_s: list[float] = []
    failures = 0
    queue = iter(signed)
    url = f"http://127.0.0.1:{port}/Inference"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=30.0) as http:

        async def worker() -> None:
            nonlocal failures
            for headers in queue:
                start = time.perf_counter()
                response = await http.post(url, content=payload, headers=headers)
                latencies_s.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failures += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall_s = time.perf_counter() - began

    latencies_s.sort()
    return {
        "rps": requests / wall_s,
        "p50_ms": 1e3 * latencies_s[len(latencies_s) // 2],
        "p99_ms": 1e3 * latencies_s[min(len(latencies_s) - 1, int(len(latencies_s) * 0.99))],
        "failures": float(failures),
    }


async def _bench(args: argparse.Namespace, ports: dict[str, int]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for port in ports.values():
        await _wait_ready(port)
        await _run_load(port, requests=min(300, args.requests), concurrency=args.concurrency)  # warm-up
    for round_index in range(args.rounds):
        order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            result = await _run_load(ports[variant], requests=args.requests, concurrency=args.concurrency)
            runs[variant].append(result)
            print(
                f"round {round_index + 1} {variant:>6}: {result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.2f} ms"
                f"  p99 {result['p99_ms']:6.2f} ms  failures {result['failures']:.0f}",
                flush=True,
            )

    summary = {
        variant: {key: statistics.median(run[key] for run in runs[variant]) for key in ("rps", "p50_ms", "p99_ms")}
        for variant in VARIANTS
    }
    summary["ratio_rps"] = summary["auth"]["rps"] / summary["noauth"]["rps"]
    summary["failures"] = sum(run["failures"] for variant in VARIANTS for run in runs[variant])
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per timed run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs per variant; medians reported")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return 0
    ports = {variant: _free_port() for variant in VARIANTS}
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve", variant, "--port", str(port)], env=env)
        for variant, port in ports.items()
    ]
    try:
        summary = asyncio.run(_bench(args, ports))
    finally:
        for process in servers:
            process.terminate()
        for process in servers:
            process.wait(timeout=10)
    print()
    print(f"gateway, unary echo, {args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}")
    print(f"{'variant':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for variant in VARIANTS:
        row = summary[variant]
        print(f"{variant:<10}{row['rps']:>10.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    print(f"ratio auth/noauth req/s: {summary['ratio_rps']:.3f} (target >= 0.6); failures: {summary['failures']:.0f}")
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
