"""Redis test kit: a real ``redis-server`` on a free 127.0.0.1 port, without persistence.

Tests here skip, saying why, when the binary is missing (``scripts/test.sh`` installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bittensor import http_auth
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
from gateway.legacy._wire import InferenceBody
from gateway.redis_stores import connect_redis
from gateway.state import GatewayStores, build_stores
from protocol.auth import legacy as legacy_auth
from protocol.auth.epistula import sign_epistula
from protocol.synapses import ChatMessage, InferenceRequest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on a fixed port that tests can stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self._workdir), "--protected-mode", "yes", "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        """Kill the server (SIGKILL: no graceful save, as a crash would)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None


def _require_binary() -> None:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"redis-server binary not found ({REDIS_SERVER}); scripts/test.sh installs it")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A shared server for tests that do not stop it (each test uses its own key namespace)."""
    _require_binary()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server this test alone may kill and restart."""
    _require_binary()
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Any]:
    client = connect_redis(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def namespace() -> str:
    """A key prefix no other test uses."""
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"


@dataclass(frozen=True)
class SignedRequest:
    """One signed ``Inference`` request, ready to send (and to send again as a replay)."""

    scheme: str
    body: bytes
    headers: dict[str, str]

    def send(self, http: Any, base_url: str) -> Any:
        """POST it with a sync or async httpx client (returns the response or its awaitable)."""
        return http.post(f"{base_url}/Inference", content=self.body, headers=self.headers)


SCHEMES = ("btauth", "epistula", "legacy")


def sign_inference(scheme: str, validator: Any, miner_ss58: str) -> SignedRequest:
    """A fresh, valid ``Inference`` request signed with ``scheme`` by ``validator`` for ``miner_ss58``."""
    if scheme == "legacy":
        fields = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "temperature": 0.0}
        parsed = InferenceBody.model_validate(fields)
        body = json.dumps({"name": "Inference", **parsed.model_dump()}).encode()
        headers = legacy_auth.sign_headers(
            validator,
            synapse_name="Inference",
            axon_hotkey=miner_ss58,
            computed_body_hash=legacy_auth.body_hash(parsed.model_dump(), parsed.hash_fields),
            uuid=str(uuid.uuid1()),
        )
    else:
        request = InferenceRequest(messages=[ChatMessage(role="user", content="hello")], max_tokens=4)
        body = request.model_dump_json().encode()
        if scheme == "btauth":
            headers = http_auth.sign(validator, method="POST", path="/Inference", body=body, receiver_ss58=miner_ss58)
        else:
            headers = sign_epistula(validator, body, signed_for=miner_ss58)
    return SignedRequest(scheme=scheme, body=body, headers={**headers, "content-type": "application/json"})


def error_of(response: Any) -> str:
    """The rejection reason in the scheme's own shape: ``error`` code, or the legacy status message."""
    if "bt_header_axon_status_message" in response.headers:
        return str(response.headers["bt_header_axon_status_message"])
    return str(response.json().get("error"))


@pytest.fixture(scope="session")
def redis_kit() -> Any:
    """Module-level helpers as a fixture (any pytest import mode finds them)."""

    class Kit:
        schemes = SCHEMES
        sign = staticmethod(sign_inference)
        error_of = staticmethod(error_of)
        free_port = staticmethod(free_port)
        server_binary = REDIS_SERVER
        Server = RedisServer

    return Kit


@pytest.fixture
async def start_shared_gateway(validator_keypair: Any, miner_keypair: Any, kit: Any) -> AsyncIterator[Any]:
    """Start in-process gateways whose state lives at ``redis_url`` (build_stores, as a miner would)."""
    started: list[tuple[GatewayServer, GatewayStores]] = []

    async def start(redis_url: str, *, policy_config: PolicyConfig | None = None) -> tuple[str, Any]:
        config = GatewayConfig(port=0, redis_url=redis_url)
        stores = build_stores(config, hotkey_ss58=miner_keypair.ss58_address)
        view = StaticMetagraphView.of_validators([validator_keypair.ss58_address])
        policy = Policy(policy_config or PolicyConfig(), view, rate_store=stores.rate_store)
        service = kit.FakeService()
        app = create_app(
            service,
            hotkey_ss58=miner_keypair.ss58_address,
            config=config,
            policy=policy,
            registry=CollectorRegistry(),
            nonce_store=stores.nonce_store,
            legacy_nonce_store=stores.legacy_nonce_store,
            epistula_store=stores.epistula_store,
        )
        server = GatewayServer(app, "127.0.0.1", 0, grace_s=1.0)
        await server.start()
        started.append((server, stores))
        return f"http://127.0.0.1:{server.port}", service

    yield start
    for server, stores in started:
        await server.stop()
        await stores.aclose()
