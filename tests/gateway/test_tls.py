"""TLS with the key pinned from the chain: the miner's identity files and a real HTTPS gateway."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, GatewayServer, Policy, PolicyConfig, StaticMetagraphView, create_app
from gateway.tls import ensure_tls_identity
from protocol.client import MinerClient, MinerTarget, QueryErrorCode
from protocol.errors import ConfigError
from protocol.tls_pin import ALGORITHM_ED25519, certificate_bytes


def test_identity_is_created_once_and_pins_the_key(tmp_path: Path) -> None:
    first = ensure_tls_identity(tmp_path / "tls", hostnames=("127.0.0.1", "miner.example"))
    assert stat.S_IMODE(first.keyfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.keyfile.parent.stat().st_mode) == 0o700
    assert len(first.certificate) == 33 and first.certificate[0] == ALGORITHM_ED25519
    cert = x509.load_pem_x509_certificate(first.certfile.read_bytes())
    assert certificate_bytes(cert.public_key()) == first.certificate
    again = ensure_tls_identity(tmp_path / "tls")
    assert again.certificate == first.certificate and again.certfile.read_bytes() == first.certfile.read_bytes()


def test_expiring_certificate_is_reissued_for_the_same_key(tmp_path: Path) -> None:
    first = ensure_tls_identity(tmp_path)
    old_pem = first.certfile.read_bytes()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=820)
    renewed = ensure_tls_identity(tmp_path, now=later)
    assert renewed.certificate == first.certificate  # the on-chain pin still holds
    assert renewed.certfile.read_bytes() != old_pem
    assert x509.load_pem_x509_certificate(renewed.certfile.read_bytes()).not_valid_after_utc > later


def test_unreadable_key_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="cannot read the TLS key"):
        ensure_tls_identity(tmp_path)
    assert (tmp_path / "key.pem").read_text() == "not a key"


@pytest.fixture
async def https_gateway(
    tmp_path: Path, validator_keypair: Any, miner_keypair: Any, kit: Any
) -> AsyncIterator[tuple[Any, Any, int]]:
    """(service, identity, port) of a gateway serving HTTPS with a fresh identity."""
    identity = ensure_tls_identity(tmp_path / "tls", hostnames=("127.0.0.1",))
    service = kit.FakeService()
    policy = Policy(PolicyConfig(), StaticMetagraphView.of_validators([validator_keypair.ss58_address]))
    app = create_app(
        service,
        hotkey_ss58=miner_keypair.ss58_address,
        config=GatewayConfig(port=0),
        policy=policy,
        registry=CollectorRegistry(),
        signer=miner_keypair,
    )
    server = GatewayServer(
        app, "127.0.0.1", 0, grace_s=0.5, tls_certfile=identity.certfile, tls_keyfile=identity.keyfile
    )
    await server.start()
    yield service, identity, server.port
    await server.stop()


@pytest.mark.parametrize("stream", [False, True])
async def test_pinned_client_reaches_the_https_gateway(
    https_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any, stream: bool
) -> None:
    _, identity, port = https_gateway
    target = MinerTarget("127.0.0.1", port, miner_keypair.ss58_address, "https", identity.certificate)
    async with MinerClient(validator_keypair, verify_responses=True) as client:
        for _ in range(2):  # the second call reuses the pooled, already-checked connection
            result = await client.infer(target, kit.prompt(stream=stream), timeout_s=5)
            assert result.ok, result.message
        assert (await client.capabilities(target, timeout_s=5)).ok


async def test_wrong_pin_fails_before_the_request_is_sent(
    https_gateway: Any, tmp_path: Path, validator_keypair: Any, miner_keypair: Any, kit: Any
) -> None:
    service, _, port = https_gateway
    other = ensure_tls_identity(tmp_path / "other")
    target = MinerTarget("127.0.0.1", port, miner_keypair.ss58_address, "https", other.certificate)
    async with MinerClient(validator_keypair) as client:
        result = await client.infer(target, kit.prompt(), timeout_s=5)
    assert not result.ok and result.error is QueryErrorCode.BAD_CERTIFICATE, result.message
    assert service.requests == []  # the handshake check stopped it before any request byte


async def test_pin_is_checked_on_pooled_connections_too(
    https_gateway: Any, tmp_path: Path, validator_keypair: Any, miner_keypair: Any, kit: Any
) -> None:
    _, identity, port = https_gateway
    good = MinerTarget("127.0.0.1", port, miner_keypair.ss58_address, "https", identity.certificate)
    bad = MinerTarget("127.0.0.1", port, miner_keypair.ss58_address, "https", ensure_tls_identity(tmp_path).certificate)
    async with MinerClient(validator_keypair) as client:
        assert (await client.infer(good, kit.prompt(), timeout_s=5)).ok
        result = await client.infer(bad, kit.prompt(), timeout_s=5)
    assert result.error is QueryErrorCode.BAD_CERTIFICATE


async def test_unpinned_https_needs_a_trusted_ca(
    https_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any
) -> None:
    service, _, port = https_gateway
    target = MinerTarget("127.0.0.1", port, miner_keypair.ss58_address, "https")
    async with MinerClient(validator_keypair) as client:
        result = await client.infer(target, kit.prompt(), timeout_s=5)
    assert result.error is QueryErrorCode.CONNECT and service.requests == []


async def test_pin_over_plain_http_is_refused(
    start_gateway: Any, validator_keypair: Any, miner_keypair: Any, kit: Any, tmp_path: Path
) -> None:
    live = await start_gateway()
    pinned_plain = MinerTarget(
        "127.0.0.1", live.server.port, miner_keypair.ss58_address, "http", ensure_tls_identity(tmp_path).certificate
    )
    async with MinerClient(validator_keypair) as client:
        assert (await client.infer(live.target, kit.prompt(), timeout_s=5)).ok  # plain stays available
        result = await client.infer(pinned_plain, kit.prompt(), timeout_s=5)
    assert result.error is QueryErrorCode.BAD_CERTIFICATE and len(live.service.requests) == 1


def test_miners_sharing_a_directory_end_up_with_one_matching_key_and_certificate(tmp_path: Path) -> None:
    directory = tmp_path / "shared-tls"
    script = (
        "import sys; from pathlib import Path; from gateway.tls import ensure_tls_identity; "
        "print(ensure_tls_identity(Path(sys.argv[1]), hostnames=('127.0.0.1',)).certificate.hex())"
    )
    root = Path(__file__).resolve().parents[2]
    miners = [
        subprocess.Popen([sys.executable, "-c", script, str(directory)], cwd=root, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    pins = {miner.communicate(timeout=60)[0].strip() for miner in miners}
    assert all(miner.returncode == 0 for miner in miners)
    assert len(pins) == 1
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")  # raises on a key/cert mismatch
