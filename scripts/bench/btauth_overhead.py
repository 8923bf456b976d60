"""Gateway throughput with btauth/1 verification vs the same route without it, side by side.

Two server processes, one uvicorn worker each, run the same ``create_app`` around an instant echo
service on 127.0.0.1: ``auth`` verifies every request (signature + replay store), ``noauth`` has
the authenticator replaced through ``app.dependency_overrides`` (policy, parsing, metrics and the
service path stay). One load process sends a fixed number of unary requests at fixed concurrency
to each in turn, alternating for several rounds; every request is signed for both servers, so the
load generator does identical work for both. Prints medians and the auth/noauth ratios: of
requests/s, and of server CPU per request (the capacity ratio when the server is the bottleneck,
and far less sensitive than requests/s to other load on a shared machine).

    .venv/bin/python scripts/bench/btauth_overhead.py --requests 2000 --concurrency 32 --rounds 5
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
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO))

VALIDATOR_URI = "//Alice"
MINER_URI = "//Bob"
VARIANTS = ("auth", "noauth")


def _build_app(variant: str) -> Any:
    """The gateway app for ``variant`` around an instant echo service."""
    import bittensor as bt

    from gateway import Caller, GatewayConfig, Policy, PolicyConfig, StaticMetagraphView, create_app
    from gateway.echo import EchoService

    validator = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI).ss58_address
    miner = bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address

    policy = Policy(
        PolicyConfig(rate_per_s=1e9, burst=10**9, max_concurrent_per_hotkey=1024),
        StaticMetagraphView.of_validators([validator]),
    )
    app = create_app(EchoService(), hotkey_ss58=miner, config=GatewayConfig(max_in_flight=4096), policy=policy)
    if variant == "noauth":
        fixed = Caller(hotkey_ss58=validator, scheme="none", nonce="0")

        async def no_auth() -> Caller:  # async: a sync override would cost a threadpool hop per request
            return fixed

        app.dependency_overrides[app.state.authenticator] = no_auth
    return app


def _serve(variant: str, port: int) -> None:
    """Server process: the gateway app for ``variant`` under one uvicorn worker."""
    import uvicorn

    app = _build_app(variant)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


async def _in_process(requests: int, rounds: int) -> dict[str, float]:
    """Application CPU per request without sockets: both apps driven in this process, alternating.

    Requests go one at a time through ``httpx.ASGITransport``; signing happens outside the timed
    span. The CPU includes the httpx client's share, the same for both variants, so the
    difference between them is the gateway's verification cost.
    """
    import bittensor as bt
    import httpx
    from bittensor import http_auth

    from protocol.synapses import ChatMessage, InferenceRequest

    keypair = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI)
    miner = bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address
    payload = InferenceRequest(messages=[ChatMessage(role="user", content="ping")], max_tokens=1).model_dump_json()
    body = payload.encode()
    cpu_us: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    clients = {
        variant: httpx.AsyncClient(transport=httpx.ASGITransport(_build_app(variant)), base_url="http://gateway")
        for variant in VARIANTS
    }
    try:
        for round_index in range(rounds + 1):  # round 0 warms up
            for variant in VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS)):
                spent_s = 0.0
                for _ in range(requests):
                    headers = http_auth.sign(keypair, method="POST", path="/Inference", body=body, receiver_ss58=miner)
                    headers["content-type"] = "application/json"
                    started_s = time.process_time()
                    response = await clients[variant].post("/Inference", content=body, headers=headers)
                    spent_s += time.process_time() - started_s
                    if response.status_code != 200:
                        raise RuntimeError(f"{variant}: HTTP {response.status_code} {response.text}")
                if round_index:
                    cpu_us[variant].append(1e6 * spent_s / requests)
    finally:
        for client in clients.values():
            await client.aclose()
    return {variant: statistics.median(cpu_us[variant]) for variant in VARIANTS}


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
    """Send ``requests`` signed unary requests at ``concurrency``; return rate and latency.

    Every request is signed just before it is sent (for both servers, so the load generator does
    the same work whichever it targets); latency is measured from after signing to the answer.
    """
    import bittensor as bt
    import httpx
    from bittensor import http_auth

    from protocol.synapses import ChatMessage, InferenceRequest

    keypair = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI)
    miner = bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address
    body = InferenceRequest(messages=[ChatMessage(role="user", content="ping")], max_tokens=1).model_dump_json()
    payload = body.encode()
    latencies_s: list[float] = []
    failures = 0
    remaining = iter(range(requests))
    url = f"http://127.0.0.1:{port}/Inference"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=30.0) as http:

        async def worker() -> None:
            nonlocal failures
            for _ in remaining:
                headers = http_auth.sign(keypair, method="POST", path="/Inference", body=payload, receiver_ss58=miner)
                headers["content-type"] = "application/json"
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _bench(args: argparse.Namespace, ports: dict[str, int], pids: dict[str, int]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for port in ports.values():
        await _wait_ready(port)
        await _run_load(port, requests=min(300, args.requests), concurrency=args.concurrency)  # warm-up
    for round_index in range(args.rounds):
        order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            cpu_before_s = _cpu_s(pids[variant])
            result = await _run_load(ports[variant], requests=args.requests, concurrency=args.concurrency)
            result["cpu_us"] = 1e6 * (_cpu_s(pids[variant]) - cpu_before_s) / args.requests
            runs[variant].append(result)
            print(
                f"round {round_index + 1} {variant:>6}: {result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.2f} ms"
                f"  p99 {result['p99_ms']:6.2f} ms  server CPU {result['cpu_us']:6.0f} us/req"
                f"  failures {result['failures']:.0f}",
                flush=True,
            )

    summary = {
        variant: {
            key: statistics.median(run[key] for run in runs[variant]) for key in ("rps", "p50_ms", "p99_ms", "cpu_us")
        }
        for variant in VARIANTS
    }
    summary["ratio_rps"] = summary["auth"]["rps"] / summary["noauth"]["rps"]
    summary["ratio_cpu"] = summary["noauth"]["cpu_us"] / summary["auth"]["cpu_us"]
    summary["failures"] = sum(run["failures"] for variant in VARIANTS for run in runs[variant])
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per timed run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs per variant; medians reported")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.add_argument(
        "--in-process-requests", type=int, default=1000, help="requests per in-process round (0 skips that part)"
    )
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return 0
    ports = {variant: _free_port() for variant in VARIANTS}
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    servers = {
        variant: subprocess.Popen([sys.executable, __file__, "--serve", variant, "--port", str(port)], env=env)
        for variant, port in ports.items()
    }
    try:
        summary = asyncio.run(_bench(args, ports, {variant: p.pid for variant, p in servers.items()}))
    finally:
        for process in servers.values():
            process.terminate()
        for process in servers.values():
            process.wait(timeout=10)
    print()
    print(f"gateway, unary echo, {args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}")
    print(f"{'variant':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'server CPU us/req':>20}")
    for variant in VARIANTS:
        row = summary[variant]
        print(f"{variant:<10}{row['rps']:>10.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['cpu_us']:>20.0f}")
    print(f"ratio auth/noauth req/s: {summary['ratio_rps']:.3f} (target >= 0.6)")
    print(f"ratio of server capacity (noauth CPU / auth CPU per request): {summary['ratio_cpu']:.3f}")
    print(f"failures: {summary['failures']:.0f}")
    if args.in_process_requests > 0:
        app_cpu = asyncio.run(_in_process(args.in_process_requests, args.rounds))
        summary["in_process_cpu_us"] = app_cpu
        summary["in_process_auth_cost_us"] = app_cpu["auth"] - app_cpu["noauth"]
        print()
        print(f"in process (no sockets), {args.in_process_requests} sequential requests x {args.rounds} rounds:")
        for variant in VARIANTS:
            print(f"{variant:<10}{app_cpu[variant]:>10.0f} us CPU/request")
        print(
            f"verification costs {app_cpu['auth'] - app_cpu['noauth']:.0f} us/request "
            "(this CPU includes the in-process httpx client, so only the difference is the gateway's)"
        )
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
