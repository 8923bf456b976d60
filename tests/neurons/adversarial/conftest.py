"""Adversarial suite fixtures: a validator engine, miners behind real gateways, a real signing client.

Engines are the real transformers engine on the tiny model; every miner is served by the real
gateway on 127.0.0.1 and queried with the real client, so verification sees exactly what a
validator on the network would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import bittensor as bt
import pytest
from adversarial_kit import build

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
from neurons.engines.base import Engine
from neurons.models import resolve_model
from neurons.serving import EngineService
from protocol.client import MinerClient, MinerTarget


@pytest.fixture(scope="session")
def tiny_dir(model_home: Path) -> Path:
    return resolve_model("tiny", model_home, progress=False)


@pytest.fixture(scope="session")
def validator_engine(tiny_dir: Path, model_home: Path) -> Iterator[Engine]:
    engine = build(str(tiny_dir), model_home)
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture(scope="session")
def miner_engine(tiny_dir: Path, model_home: Path) -> Iterator[Engine]:
    """The honest miner's own engine: the same model, a separate instance."""
    engine = build(str(tiny_dir), model_home)
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture(scope="session")
def validator_keypair() -> Any:
    return bt.sp_core.Keypair.create_from_uri("//Alice")


@pytest.fixture(scope="session")
def miner_keypair() -> Any:
    return bt.sp_core.Keypair.create_from_uri("//Bob")


Serve = Callable[[Engine], Awaitable[MinerTarget]]


@pytest.fixture
async def serve(validator_keypair: Any, miner_keypair: Any) -> AsyncIterator[Serve]:
    """Start a real miner gateway around an engine on a free port; all are stopped at teardown."""
    servers: list[GatewayServer] = []

    async def start(engine: Engine) -> MinerTarget:
        policy = Policy(PolicyConfig(), StaticMetagraphView.of_validators([validator_keypair.ss58_address]))
        app = create_app(
            EngineService(engine, version="test"),
            hotkey_ss58=miner_keypair.ss58_address,
            config=GatewayConfig(port=0),
            policy=policy,
        )
        server = GatewayServer(app, "127.0.0.1", 0, grace_s=1.0)
        await server.start()
        servers.append(server)
        return MinerTarget("127.0.0.1", server.port, miner_keypair.ss58_address)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def client(validator_keypair: Any) -> AsyncIterator[MinerClient]:
    async with MinerClient(validator_keypair) as miner_client:
        yield miner_client
