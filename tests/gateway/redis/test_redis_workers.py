"""Four uvicorn workers sharing Redis: a request replayed to another worker is rejected, for every scheme.

The workers are real processes (``uvicorn gateway.asgi:create_worker_app --factory --workers 4``);
each answer names its worker in ``X-Axongate-Worker``, and each httpx client below holds one
keep-alive connection, so the original and the replay provably reach different processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.asgi import WORKER_HEADER

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[3]
WORKERS = 4


@dataclass
class Cluster:
    base_url: str
    redis: Any
    log: Path


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_kit: Any, validator_keypair: Any, miner_keypair: Any
) -> Iterator[Cluster]:
    if not Path(redis_kit.server_binary).exists():
        pytest.skip(f"redis-server binary not found ({redis_kit.server_binary}); scripts/test.sh installs it")
    workdir = tmp_path_factory.mktemp("workers")
    redis = redis_kit.Server(workdir)
    redis.start()
    port = redis_kit.free_port()
    env = {
        **os.environ,
        "AXONGATE_GATEWAY__REDIS_URL": redis.url,
        "AXONGATE_WORKER__HOTKEY_SS58": miner_keypair.ss58_address,
        "AXONGATE_WORKER__COMPONENTS": "worker_components:build",
        "AXONGATE_TEST_VALIDATORS": validator_keypair.ss58_address,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(ROOT)]),
    }
    env.pop("AXONGATE_CONFIG", None)
    log = workdir / "uvicorn.log"
    command = [
        sys.executable, "-m", "uvicorn", "gateway.asgi:create_worker_app", "--factory",
        "--http", "gateway.coalesce:HttpToolsProtocol", "--workers", str(WORKERS),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_serving(base_url, process, log)
        yield Cluster(base_url=base_url, redis=redis, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        redis.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def _wait_serving(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"uvicorn exited {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"workers did not serve within 90 s:\n{log.read_text()[-4000:]}")


def _pinned_clients(base_url: str) -> list[tuple[str, httpx.Client]]:
    """Two clients, each with one keep-alive connection, served by two different worker processes."""
    found: dict[str, httpx.Client] = {}
    for _ in range(200):
        client = httpx.Client(base_url=base_url, trust_env=False, timeout=10.0, limits=httpx.Limits(max_connections=1))
        pid = client.get("/health").headers[WORKER_HEADER]
        if pid in found:
            client.close()
        else:
            found[pid] = client
        if len(found) == 2:
            return list(found.items())
        time.sleep(0.01)
    for client in found.values():
        client.close()
    raise AssertionError("200 fresh connections all reached one worker")


@pytest.mark.parametrize("scheme", ["btauth", "epistula", "legacy"])
def test_replay_to_another_worker_is_rejected(
    scheme: str, cluster: Cluster, redis_kit: Any, validator_keypair: Any, miner_keypair: Any
) -> None:
    (first_pid, first), (second_pid, second) = _pinned_clients(cluster.base_url)
    try:
        request = redis_kit.sign(scheme, validator_keypair, miner_keypair.ss58_address)
        served = request.send(first, "")
        replayed = request.send(second, "")
    finally:
        first.close()
        second.close()
    assert served.status_code == 200, served.text
    assert replayed.status_code == 401, replayed.text
    assert served.headers[WORKER_HEADER] == first_pid
    assert replayed.headers[WORKER_HEADER] == second_pid != first_pid
    expected = "nonce is not newer" if scheme == "legacy" else "auth_replayed"
    assert expected in redis_kit.error_of(replayed)


def test_redis_killed_fails_closed_and_restart_recovers(
    cluster: Cluster, redis_kit: Any, validator_keypair: Any, miner_keypair: Any
) -> None:
    miner = miner_keypair.ss58_address
    with httpx.Client(base_url=cluster.base_url, trust_env=False, timeout=10.0) as http:
        assert redis_kit.sign("btauth", validator_keypair, miner).send(http, "").status_code == 200
        cluster.redis.stop()
        refused = [redis_kit.sign(s, validator_keypair, miner).send(http, "") for s in redis_kit.schemes]
        cluster.redis.start()
        recovered = [redis_kit.sign(s, validator_keypair, miner).send(http, "") for s in redis_kit.schemes]
    assert [r.status_code for r in refused] == [503, 503, 503], [r.text for r in refused]
    assert [r.json().get("error") for r in refused[:2]] == ["state_store_unavailable"] * 2
    assert "Redis" in refused[2].json()["message"]
    assert [r.status_code for r in recovered] == [200, 200, 200], [r.text for r in recovered]
