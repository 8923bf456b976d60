"""Gateway test kit: real keypairs, a scripted fake inference service, a live gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bittensor as bt
import httpx
import pytest
from bittensor import http_auth
from prometheus_client import CollectorRegistry

from gateway import (
    GatewayConfig,
    GatewayServer,
    Policy,
    PolicyConfig,
    StaticMetagraphView,
    create_app,
)
from protocol.client import MinerClient, MinerTarget
from protocol.synapses import (
    CapabilitiesResponse,
    ChatMessage,
    FinishReason,
    InferenceChunk,
    InferenceRequest,
    Usage,
)

MODEL = "fake/echo-1"
CAPABILITIES = CapabilitiesResponse(
    model=MODEL, weights_sha256="ab" * 32, engine="fake", context_length=2048, version="0.1.0"
)


def make_chunks(n: int, *, tokens_per_chunk: int = 1) -> list[InferenceChunk]:
    """``n`` chunks of distinct tokens; the last one finishes with ``length``."""
    chunks = []
    for i in range(n):
        ids = [100 + i * tokens_per_chunk + j for j in range(tokens_per_chunk)]
        last = i == n - 1
        chunks.append(
            InferenceChunk(
                token_ids=ids,
                logprobs=[-0.5] * len(ids),
                ranks=[1] * len(ids),
                text="".join(f"t{t} " for t in ids),
                finish_reason=FinishReason.LENGTH if last else None,
                usage=Usage(prompt_tokens=3, completion_tokens=n * tokens_per_chunk) if last else None,
            )
        )
    return chunks


@dataclass
class FakeService:
    """An ``InferenceService`` that replays ``chunks`` with ``delay_s`` before each after the first.

    Records monotonic timestamps of the start and of each yield, whether it was closed early,
    and can raise ``fail_with`` before any chunk or ``fail_after`` after the first one.
    """

    chunks: Sequence[InferenceChunk] = field(default_factory=lambda: make_chunks(3))
    delay_s: float = 0.0
    fail_with: BaseException | None = None
    fail_after: BaseException | None = None
    gate: asyncio.Event | None = None
    started_at: list[float] = field(default_factory=list)
    yielded_at: list[float] = field(default_factory=list)
    first_yielded: asyncio.Event = field(default_factory=asyncio.Event)
    closed_early: int = 0
    finished: int = 0
    requests: list[InferenceRequest] = field(default_factory=list)

    async def capabilities(self) -> CapabilitiesResponse:
        return CAPABILITIES

    async def infer(self, request: InferenceRequest) -> AsyncIterator[InferenceChunk]:
        self.requests.append(request)
        self.started_at.append(time.monotonic())
        if self.fail_with is not None:
            raise self.fail_with
        done = False
        try:
            for i, chunk in enumerate(self.chunks):
                if i > 0:
                    if self.fail_after is not None:
                        raise self.fail_after
                    if self.gate is not None:
                        await self.gate.wait()
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                self.yielded_at.append(time.monotonic())
                if i == len(self.chunks) - 1:
                    done = True  # the consumer may close us right after the final chunk
                    self.finished += 1
                self.first_yielded.set()
                yield chunk
        finally:
            if not done:
                self.closed_early += 1


VALIDATOR_URI = "//Alice"
MINER_URI = "//Bob"
STRANGER_URI = "//Eve"


@pytest.fixture(scope="session")
def validator_keypair() -> Any:
    return bt.sp_core.Keypair.create_from_uri(VALIDATOR_URI)


@pytest.fixture(scope="session")
def miner_keypair() -> Any:
    return bt.sp_core.Keypair.create_from_uri(MINER_URI)


@pytest.fixture(scope="session")
def stranger_keypair() -> Any:
    return bt.sp_core.Keypair.create_from_uri(STRANGER_URI)


@dataclass
class LiveGateway:
    """A running gateway and what tests need to reach it."""

    server: GatewayServer
    service: FakeService
    app: Any
    target: MinerTarget
    registry: CollectorRegistry

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def start_gateway(validator_keypair: Any, miner_keypair: Any) -> AsyncIterator[GatewayFactory]:
    """Start gateways on free ports; all are stopped at teardown."""
    servers: list[GatewayServer] = []

    async def start(
        service: FakeService | None = None,
        *,
        config: GatewayConfig | None = None,
        policy_config: PolicyConfig | None = None,
        peers: StaticMetagraphView | None = None,
        grace_s: float = 5.0,
    ) -> LiveGateway:
        service = service if service is not None else FakeService()
        config = config if config is not None else GatewayConfig(port=0)
        metagraph = peers if peers is not None else StaticMetagraphView.of_validators([validator_keypair.ss58_address])
        policy = Policy(policy_config if policy_config is not None else PolicyConfig(), metagraph)
        registry = CollectorRegistry()
        app = create_app(
            service, hotkey_ss58=miner_keypair.ss58_address, config=config, policy=policy, registry=registry
        )
        server = GatewayServer(app, "127.0.0.1", 0, grace_s=grace_s)
        await server.start()
        servers.append(server)
        target = MinerTarget("127.0.0.1", server.port, miner_keypair.ss58_address)
        return LiveGateway(server=server, service=service, app=app, target=target, registry=registry)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def client(validator_keypair: Any) -> AsyncIterator[MinerClient]:
    async with MinerClient(validator_keypair) as miner_client:
        yield miner_client


@pytest.fixture
async def raw_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as http:
        yield http


def prompt(*, stream: bool = False, **sampling: Any) -> InferenceRequest:
    return InferenceRequest(messages=[ChatMessage(role="user", content="hello")], stream=stream, **sampling)


def signed_headers(
    keypair: Any,
    body: bytes,
    *,
    receiver_ss58: str,
    path: str = "/Inference",
    nonce_ns: int | None = None,
) -> dict[str, str]:
    """btauth/1 headers for ``body`` plus JSON content type (for hand-built requests)."""
    headers = http_auth.sign(
        keypair, method="POST", path=path, body=body, receiver_ss58=receiver_ss58, nonce_ns=nonce_ns
    )
    return {**headers, "content-type": "application/json"}


class Boom(RuntimeError):
    """An unexpected service bug (not a ServiceError)."""


@dataclass(frozen=True)
class GatewayKit:
    """Helpers for test modules (fixtures, so they work under any pytest import mode)."""

    FakeService: type[FakeService]
    Boom: type[Boom]
    capabilities: CapabilitiesResponse
    model: str
    make_chunks: Callable[..., list[InferenceChunk]]
    prompt: Callable[..., InferenceRequest]
    signed_headers: Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def kit() -> GatewayKit:
    return GatewayKit(
        FakeService=FakeService,
        Boom=Boom,
        capabilities=CAPABILITIES,
        model=MODEL,
        make_chunks=make_chunks,
        prompt=prompt,
        signed_headers=signed_headers,
    )


@pytest.fixture
async def stranger_client(stranger_keypair: Any) -> AsyncIterator[MinerClient]:
    async with MinerClient(stranger_keypair) as miner_client:
        yield miner_client
