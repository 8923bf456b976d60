"""Legacy axon wire: axongate's gateway and client against the stock bittensor 10.5.0 Axon and Dendrite.

Server: the axongate gateway (``create_app`` served by ``GatewayServer`` on uvloop, as the miner
serves it; legacy endpoint, instant echo service; answers unsigned unless ``--sign-responses``)
and the stock ``bt.Axon`` (same ``Inference`` synapse from ``protocol/legacy.py``, a forward
filling the same trivial completion) run side by side, each one process pinned to CPU 0. One load process
pinned to CPU 1 sends identical legacy-signed requests (fresh nonce, one dendrite uuid per
connection, keep-alive, fixed concurrency) to each in turn for a fixed time, alternating for
several rounds. Reported: requests/s and server CPU per request (medians), and the ratio.

Client: 256 concurrent unary requests to the axongate gateway from axongate's ``MinerClient``
(btauth/1) and from the stock 10.5.0 ``Dendrite`` (legacy route), each in a process pinned to
CPU 1; reported: client CPU seconds per request (medians over rounds) and the ratio.

Targets: gateway >= 20x the stock Axon's requests/s on the same core; client >= 20x less CPU
per request than the stock Dendrite. Needs ``.venv-legacy`` (``scripts/legacy_env.sh``).

    .venv/bin/python scripts/bench/axon.py --seconds 4 --rounds 5 --client-rounds 3
    .venv/bin/python scripts/bench/axon.py --seconds 4 --rounds 5 --client-rounds 1 --sign-responses
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
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LEGACY_PYTHON = Path(os.environ.get("AXONGATE_LEGACY_VENV", ROOT / ".venv-legacy")) / "bin" / "python"
V10_SIDE = Path(__file__).with_name("_axon_v10.py")
VALIDATOR_URI = "//Alice"
MINER_URI = "//Bob"
SERVER_CPU, LOAD_CPU = 0, 1
SERVERS = ("axongate", "stock")
PROMPT = "ping"


def _serve_axongate(port: int, *, sign: bool) -> None:
    """Server process: the axongate gateway around an instant echo service, served as the miner serves it."""
    import bittensor as bt

    from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
    from gateway.echo import EchoService
    from gateway.server import run_serving

    validator = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI).ss58_address
    miner = bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address

    policy = Policy(
        PolicyConfig(rate_per_s=1e9, burst=10**9, max_concurrent_per_hotkey=1024),
        StaticMetagraphView.of_validators([validator]),
    )
    config = GatewayConfig(port=port, max_in_flight=4096)
    signer = bt.sp_core.Keypair.create_from_uri(MINER_URI) if sign else None
    app = create_app(EchoService(), hotkey_ss58=miner, config=config, policy=policy, signer=signer)

    async def serve() -> None:  # as the miner serves: GatewayServer on uvloop, until terminated
        async with GatewayServer(app, "127.0.0.1", port):
            await asyncio.Event().wait()

    run_serving(serve())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > 1 else []


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body (what both servers send for JSON)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:"))
    return status, await reader.readexactly(length)


class LegacyLoad:
    """Keep-alive connections sending legacy-signed ``Inference`` requests, one signature per request.

    A bare asyncio HTTP/1.1 loop, so the load process is not the bottleneck; both servers get
    byte-identical requests apart from nonce and signature.
    """

    def __init__(self) -> None:
        import bittensor as bt

        from protocol.auth import legacy as legacy_auth

        self._auth = legacy_auth
        self._keypair = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI)
        self._miner = bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address
        fields = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1, "temperature": 0.0}
        fields |= {"top_p": 1.0, "top_k": 0, "seed": None}
        terminal = dict.fromkeys(("status_code", "status_message", "process_time", "ip", "port", "version"))
        terminal |= dict.fromkeys(("nonce", "uuid", "hotkey", "signature"))
        body = {"name": "Inference", "timeout": 12.0, "total_size": 0, "header_size": 0, "dendrite": terminal}
        body |= {"axon": {**terminal, "hotkey": self._miner}, "computed_body_hash": "", **fields}
        body |= {"text": "", "token_ids": [], "logprobs": [], "ranks": [], "finish_reason": None, "usage": None}
        body |= {"model": None, "timings": None}
        self._body = json.dumps(body).encode()
        self._hash = legacy_auth.body_hash(fields, ("messages", "max_tokens", "temperature", "top_p", "top_k", "seed"))

    def request(self, port: int, dendrite_uuid: str) -> bytes:
        headers = self._auth.sign_headers(
            self._keypair,
            synapse_name="Inference",
            axon_hotkey=self._miner,
            computed_body_hash=self._hash,
            uuid=dendrite_uuid,
        )
        headers |= {"bt_header_axon_ip": "127.0.0.1", "bt_header_axon_port": str(port)}
        head = f"POST /Inference HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(self._body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (head + "\r\n").encode() + self._body

    async def run(self, port: int, *, seconds: float, concurrency: int) -> dict[str, float]:
        latencies_s: list[float] = []
        failures = 0
        deadline = time.perf_counter() + seconds

        async def connection() -> None:
            nonlocal failures
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            dendrite_uuid = str(uuid.uuid1())
            try:
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    writer.write(self.request(port, dendrite_uuid))
                    status, _ = await _read_response(reader)
                    latencies_s.append(time.perf_counter() - start)
                    failures += status != 200
            finally:
                writer.close()

        began = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(concurrency)))
        wall_s = time.perf_counter() - began
        latencies_s.sort()
        return {
            "rps": len(latencies_s) / wall_s,
            "requests": float(len(latencies_s)),
            "p50_ms": 1e3 * latencies_s[len(latencies_s) // 2] if latencies_s else float("nan"),
            "failures": float(failures),
        }


def _cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def _wait_ready(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


async def _server_rounds(args: argparse.Namespace, servers: dict[str, tuple[int, int]]) -> dict[str, Any]:
    load = LegacyLoad()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
    for port, _ in servers.values():
        await _wait_ready(port)
        await load.run(port, seconds=1.0, concurrency=args.concurrency)  # warm-up
    for round_index in range(args.rounds):
        for name in SERVERS if round_index % 2 == 0 else tuple(reversed(SERVERS)):
            port, pid = servers[name]
            cpu0 = _cpu_s(pid)
            result = await load.run(port, seconds=args.seconds, concurrency=args.concurrency)
            result["server_cpu_us"] = 1e6 * (_cpu_s(pid) - cpu0) / max(result["requests"], 1.0)
            runs[name].append(result)
            print(
                f"round {round_index + 1} {name:>8}: {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                f"server CPU {result['server_cpu_us']:8.0f} us/req  failures {result['failures']:.0f}",
                flush=True,
            )
    summary: dict[str, Any] = {
        name: {key: statistics.median(r[key] for r in runs[name]) for key in ("rps", "p50_ms", "server_cpu_us")}
        for name in SERVERS
    }
    summary["rps_ratio"] = summary["axongate"]["rps"] / summary["stock"]["rps"]
    summary["cpu_ratio"] = summary["stock"]["server_cpu_us"] / summary["axongate"]["server_cpu_us"]
    summary["failures"] = sum(r["failures"] for name in SERVERS for r in runs[name])
    return summary


async def _axongate_client(port: int, count: int, rounds: int) -> dict[str, Any]:
    import bittensor as bt

    from protocol.client import MinerClient, MinerTarget
    from protocol.synapses import ChatMessage, InferenceRequest

    keypair = bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI)
    target = MinerTarget("127.0.0.1", port, bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address)
    request = InferenceRequest(messages=[ChatMessage(role="user", content=PROMPT)], max_tokens=1)
    cpu_s, failures = [], 0
    async with MinerClient(keypair) as client:
        await asyncio.gather(*(client.infer(target, request, timeout_s=60) for _ in range(16)))  # warm-up
        for _ in range(rounds):
            cpu0 = time.process_time()
            results = await asyncio.gather(*(client.infer(target, request, timeout_s=60) for _ in range(count)))
            cpu_s.append(time.process_time() - cpu0)
            failures += sum(not r.ok for r in results)
    return {"cpu_s": cpu_s, "failures": failures}


def _client_rounds(args: argparse.Namespace, port: int) -> dict[str, Any]:
    miner = _miner_ss58()
    command = [*_pinned(LOAD_CPU), str(LEGACY_PYTHON), str(V10_SIDE), "client", str(port), miner]
    done = subprocess.run(
        [*command, str(args.client_requests), str(args.client_rounds)], capture_output=True, text=True, check=True
    )
    stock = json.loads(done.stdout.strip().splitlines()[-1])
    ours = asyncio.run(_axongate_client(port, args.client_requests, args.client_rounds))
    summary: dict[str, Any] = {}
    for name, result in (("axongate", ours), ("stock", stock)):
        per_request = [cpu / args.client_requests for cpu in result["cpu_s"]]
        summary[name] = {"cpu_us": 1e6 * statistics.median(per_request), "failures": result["failures"]}
        for reason, count in result.get("failure_reasons", {}).items():
            print(f"client {name:>8}: {count} failed: {reason}", flush=True)
        print(f"client {name:>8}: " + "  ".join(f"{1e6 * x:7.0f}" for x in per_request) + " us CPU/request", flush=True)
    summary["cpu_ratio"] = summary["stock"]["cpu_us"] / summary["axongate"]["cpu_us"]
    return summary


def _miner_ss58() -> str:
    import bittensor as bt

    return bt.sp_core.Keypair.create_from_uri(MINER_URI).ss58_address


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each timed server run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating server runs per server; medians")
    parser.add_argument("--client-requests", type=int, default=256, help="concurrent requests per client round")
    parser.add_argument("--client-rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.add_argument(
        "--sign-responses",
        action="store_true",
        help="the axongate gateway signs its answers, as a miner does (the stock Axon signs nothing)",
    )
    parser.add_argument("--serve-axongate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_axongate:
        _serve_axongate(args.serve_axongate, sign=args.sign_responses)
        return 0
    if not LEGACY_PYTHON.exists():
        print(f"missing {LEGACY_PYTHON}: run scripts/legacy_env.sh first", file=sys.stderr)
        return 2

    ports = {name: _free_port() for name in SERVERS}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    commands = {
        "axongate": [sys.executable, __file__, "--serve-axongate", str(ports["axongate"])]
        + (["--sign-responses"] if args.sign_responses else []),
        "stock": [str(LEGACY_PYTHON), str(V10_SIDE), "serve", str(ports["stock"])],
    }
    processes = {
        name: subprocess.Popen([*_pinned(SERVER_CPU), *command], env=env, stdout=subprocess.DEVNULL)
        for name, command in commands.items()
    }
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {LOAD_CPU})
    try:
        servers = {name: (ports[name], processes[name].pid) for name in SERVERS}
        server = asyncio.run(_server_rounds(args, servers))
        client = _client_rounds(args, ports["axongate"])
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=15)

    print()
    print(f"legacy Inference, {args.rounds} x {args.seconds:g} s per server, concurrency {args.concurrency}")
    print(f"{'server':<10}{'req/s':>10}{'p50 ms':>10}{'CPU us/req':>12}")
    for name in SERVERS:
        row = server[name]
        print(f"{name:<10}{row['rps']:>10.1f}{row['p50_ms']:>10.2f}{row['server_cpu_us']:>12.0f}")
    print(f"gateway/stock req/s: {server['rps_ratio']:.1f}x (target >= 20); server CPU per request: "
          f"{server['cpu_ratio']:.1f}x less; failures {server['failures']:.0f}")  # fmt: skip
    print(
        f"client CPU per request: axongate {client['axongate']['cpu_us']:.0f} us, stock Dendrite "
        f"{client['stock']['cpu_us']:.0f} us -> {client['cpu_ratio']:.1f}x less (target >= 20); failures "
        f"{client['axongate']['failures'] + client['stock']['failures']}"
    )
    if args.json:
        print(json.dumps({"server": server, "client": client}))
    failures = server["failures"] + client["axongate"]["failures"] + client["stock"]["failures"]
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
