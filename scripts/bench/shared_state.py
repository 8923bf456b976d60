"""What shared state and Epistula cost: Redis stores against the in-memory ones, Epistula against btauth/1.

Run: ``.venv/bin/python scripts/bench/shared_state.py`` (starts its own redis-server on 127.0.0.1).
Every figure is a median over ``ROUNDS`` rounds, reported with its reference measured in the same run:

1. replay check: ``check_and_store`` calls/s, in-memory vs Redis (one client, 64 concurrent calls);
2. verification: Epistula v2 vs btauth/1 signature checks per second (one core, no store);
3. gateway: signed ``Inference`` requests/s through one in-process gateway (16 concurrent, same
   client), state in memory vs in Redis.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bittensor as bt  # noqa: E402
from bittensor import http_auth  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app  # noqa: E402
from gateway.echo import EchoService  # noqa: E402
from gateway.state import build_stores  # noqa: E402
from protocol.auth.btauth import verify_btauth_signature  # noqa: E402
from protocol.auth.epistula import sign_epistula, verify_epistula_signature  # noqa: E402
from protocol.client import MinerClient, MinerTarget  # noqa: E402
from protocol.synapses import ChatMessage, InferenceRequest  # noqa: E402

ROUNDS = 5
STORE_CALLS = 4000
VERIFY_CALLS = 2000
GATEWAY_REQUESTS = 400
CONCURRENCY = 16


def _start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


async def _store_rate(store: Any) -> float:
    nonce = [time.time_ns()]

    async def one() -> None:
        nonce[0] += 1
        await store.check_and_store("5Hotkey", nonce[0])

    started = time.perf_counter()
    for _ in range(STORE_CALLS // 64):
        await asyncio.gather(*(one() for _ in range(64)))
    return (STORE_CALLS // 64 * 64) / (time.perf_counter() - started)


def _verify_rates(validator: Any, miner: Any) -> tuple[float, float]:
    body = InferenceRequest(messages=[ChatMessage(role="user", content="hi")]).model_dump_json().encode()
    epistula = sign_epistula(validator, body, signed_for=miner.ss58_address)
    btauth = http_auth.sign(validator, method="POST", path="/Inference", body=body, receiver_ss58=miner.ss58_address)
    started = time.perf_counter()
    for _ in range(VERIFY_CALLS):
        verify_epistula_signature(epistula, body, receiver_ss58=miner.ss58_address, max_age_s=300.0)
    epistula_rate = VERIFY_CALLS / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(VERIFY_CALLS):
        verify_btauth_signature(
            btauth, body, method="POST", target="/Inference", receiver_ss58=miner.ss58_address, max_age_s=300.0
        )
    return epistula_rate, VERIFY_CALLS / (time.perf_counter() - started)


async def _gateway_rate(config: GatewayConfig, validator: Any, miner: Any) -> float:
    stores = build_stores(config, hotkey_ss58=miner.ss58_address)
    policy_config = PolicyConfig(rate_per_s=1e6, burst=1_000_000, max_concurrent_per_hotkey=1000)
    policy = Policy(
        policy_config, StaticMetagraphView.of_validators([validator.ss58_address]), rate_store=stores.rate_store
    )
    app = create_app(
        EchoService(), hotkey_ss58=miner.ss58_address, config=config, policy=policy, registry=CollectorRegistry(),
        nonce_store=stores.nonce_store, legacy_nonce_store=stores.legacy_nonce_store,
        epistula_store=stores.epistula_store,
    )  # fmt: skip
    request = InferenceRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=1)
    try:
        async with GatewayServer(app, "127.0.0.1", 0) as server, MinerClient(validator) as client:
            target = MinerTarget("127.0.0.1", server.port, miner.ss58_address)
            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def one() -> None:
                async with semaphore:
                    (await client.infer(target, request, timeout_s=30.0)).raise_for_failure()

            await asyncio.gather(*(one() for _ in range(32)))  # warm connections
            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(GATEWAY_REQUESTS)))
            return GATEWAY_REQUESTS / (time.perf_counter() - started)
    finally:
        await stores.aclose()


async def main() -> None:
    validator = bt.sp_core.Keypair.create_from_uri("//Alice")
    miner = bt.sp_core.Keypair.create_from_uri("//Bob")
    redis_process, url = _start_redis()
    memory_config, redis_config = GatewayConfig(port=0), GatewayConfig(port=0, redis_url=url)
    rows: dict[str, list[float]] = {k: [] for k in ("mem", "redis", "epi", "bt", "gw_mem", "gw_redis")}
    try:
        for _ in range(ROUNDS):
            memory = build_stores(memory_config, hotkey_ss58=miner.ss58_address)
            shared = build_stores(redis_config, hotkey_ss58=miner.ss58_address)
            rows["mem"].append(await _store_rate(memory.nonce_store))
            rows["redis"].append(await _store_rate(shared.nonce_store))
            await shared.aclose()
            epistula_rate, btauth_rate = _verify_rates(validator, miner)
            rows["epi"].append(epistula_rate)
            rows["bt"].append(btauth_rate)
            rows["gw_mem"].append(await _gateway_rate(memory_config, validator, miner))
            rows["gw_redis"].append(await _gateway_rate(redis_config, validator, miner))
    finally:
        redis_process.kill()
        redis_process.wait()
    med = {key: statistics.median(values) for key, values in rows.items()}
    print(f"rounds={ROUNDS} (medians)")
    lines = [
        ("replay check/s", "in-memory", med["mem"], "redis", med["redis"]),
        ("verify/s", "btauth/1", med["bt"], "epistula", med["epi"]),
        ("gateway req/s", "in-memory", med["gw_mem"], "redis", med["gw_redis"]),
    ]
    for what, ref_name, ref, name, value in lines:
        print(f"{what:<16} {ref_name} {ref:>10.1f}   {name} {value:>10.1f}   ratio {value / ref:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
