"""Protocol test kit: keypairs and a fixture serving any ASGI app on 127.0.0.1 with real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import bittensor as bt
import pytest

from gateway.server import GatewayServer
from protocol.client import MinerClient, MinerTarget


@pytest.fixture(scope="session")
def validator_keypair() -> Any:
    return bt.sp_core.Keypair.create_from_uri("//Alice")


@pytest.fixture(scope="session")
def miner_hotkey() -> str:
    return bt.sp_core.Keypair.create_from_uri("//Bob").ss58_address


@pytest.fixture
async def serve(miner_hotkey: str) -> AsyncIterator[Callable[[Any], Any]]:
    """``await serve(app)`` runs ``app`` on a free port and returns its :class:`MinerTarget`."""
    servers: list[GatewayServer] = []

    async def start(app: Any) -> MinerTarget:
        server = GatewayServer(app, "127.0.0.1", 0, grace_s=0.1)
        await server.start()
        servers.append(server)
        return MinerTarget("127.0.0.1", server.port, miner_hotkey)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def client(validator_keypair: Any) -> AsyncIterator[MinerClient]:
    async with MinerClient(validator_keypair, max_response_bytes=64 * 1024) as miner_client:
        yield miner_client
