"""Miner composition root: config -> wallet -> chain -> engine -> gateway -> endpoint on chain.

Run with ``axongate miner`` or ``python neurons/miner.py``. SIGTERM or SIGINT stops accepting
new requests, lets in-flight ones finish (up to the gateway's grace period) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from gateway.config import GatewayConfig, PolicyConfig
from neurons.chain.config import ChainConfig
from neurons.engines.config import EngineConfig
from neurons.settings import AxongateSettings, WalletConfig, add_neuron_arguments, neuron_overrides

__all__ = ["MinerSettings", "add_commands", "run_miner"]


class MinerSettings(AxongateSettings):
    """Everything a miner process needs; see ``configs/miner.toml`` for documented defaults."""

    wallet: WalletConfig = WalletConfig()
    chain: ChainConfig = ChainConfig()
    engine: EngineConfig = EngineConfig()
    gateway: GatewayConfig = GatewayConfig()
    policy: PolicyConfig = PolicyConfig(require_validator_permit=True)
    """Miners answer registered validators only, by default."""
    external_ip: str | None = Field(
        default=None, description="Address published on chain; defaults to gateway.host unless that is a wildcard."
    )
    metagraph_refresh_blocks: int = Field(default=5, ge=1, description="Refresh the policy's metagraph this often.")


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("miner", help="Serve a model behind the gateway and publish it on chain.")
    add_miner_arguments(parser)
    parser.set_defaults(func=_cli)


def add_miner_arguments(parser: argparse.ArgumentParser) -> None:
    add_neuron_arguments(parser, config_help="TOML file (see configs/miner.toml)")
    parser.add_argument("--port", type=int, help="gateway port (gateway.port)")
    parser.add_argument("--host", help="gateway bind address (gateway.host)")
    parser.add_argument("--external-ip", help="address to publish on chain")


def settings_from_args(args: argparse.Namespace) -> MinerSettings:
    return MinerSettings.load(
        args.config,
        **neuron_overrides(args),
        external_ip=args.external_ip,
        gateway={"port": args.port, "host": args.host},
    )


def _cli(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from gateway.server import run_serving

    return run_serving(run_miner(settings))


async def run_miner(settings: MinerSettings) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    from loguru import logger

    from gateway.app import create_app
    from gateway.policy import Policy
    from gateway.server import GatewayServer
    from gateway.state import build_stores
    from gateway.tls import ensure_tls_identity
    from neurons import __version__
    from neurons.chain import open_chain
    from neurons.engines import build_engine
    from neurons.logs import setup_logging
    from neurons.serving import ChainMetagraphView, EngineService
    from neurons.wallets import load_wallet
    from protocol.errors import ConfigError

    setup_logging(settings.log_level, "miner")
    wallet = load_wallet(settings.wallet)
    hotkey = wallet.hotkey.ss58_address
    publish_ip = settings.external_ip or settings.gateway.host
    if publish_ip in ("0.0.0.0", "::"):
        raise ConfigError("gateway.host is a wildcard address: set external_ip to the address validators should dial")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    chain = await open_chain(settings.chain, settings.home)
    engine = server = stores = None
    try:
        uid = await chain.require_uid(hotkey)
        view = ChainMetagraphView(await chain.metagraph())
        logger.info("loading engine {} model {}", settings.engine.kind, settings.engine.model)
        engine = await asyncio.to_thread(build_engine, settings.engine, settings.home)
        stores = build_stores(settings.gateway, hotkey_ss58=hotkey)
        app = create_app(
            EngineService(engine, version=__version__),
            hotkey_ss58=hotkey,
            config=settings.gateway,
            policy=Policy(settings.policy, view, rate_store=stores.rate_store),
            nonce_store=stores.nonce_store,
            legacy_nonce_store=stores.legacy_nonce_store,
            epistula_store=stores.epistula_store,
            signer=wallet.hotkey,
        )
        identity = None
        if settings.gateway.tls_enabled:
            identity = await asyncio.to_thread(
                ensure_tls_identity, settings.gateway.tls_dir or settings.home / "tls", hostnames=(publish_ip,)
            )
        server = GatewayServer(
            app,
            host=settings.gateway.host,
            port=settings.gateway.port,
            grace_s=settings.gateway.shutdown_grace_s,
            tls_certfile=identity.certfile if identity else None,
            tls_keyfile=identity.keyfile if identity else None,
        )
        await server.start()
        # With TLS the endpoint goes out as ServeAxonTls: validators pin the key published with it.
        certificate = identity.certificate if identity else None
        result = await chain.serve_axon(wallet, publish_ip, server.port, certificate=certificate)
        if not result.success:
            raise ConfigError(f"could not publish the endpoint on chain: {result.message}")
        scheme = "https" if identity else "http"
        logger.info("miner uid {} serving {}://{}:{} (hotkey {})", uid, scheme, publish_ip, server.port, hotkey)
        await _refresh_until_stopped(chain, view, settings.metagraph_refresh_blocks, stop)
        logger.info("stopping: finishing in-flight requests")
        return 0
    finally:
        if server is not None:
            await server.stop()
        if stores is not None:
            await stores.aclose()
        if engine is not None:
            await engine.aclose()
        await chain.aclose()


async def _refresh_until_stopped(chain: Any, view: Any, every_blocks: int, stop: asyncio.Event) -> None:
    """Keep the policy's metagraph view fresh; a failed refresh keeps the last good view."""
    from loguru import logger

    last_block = await chain.block()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=2.0)
        if stop.is_set():
            return
        try:
            block = await chain.block()
            if block - last_block >= every_blocks:
                view.update(await chain.metagraph())
                last_block = block
        except Exception as exc:  # a chain hiccup must not take the miner down
            logger.warning("metagraph refresh failed, keeping the previous view: {}", exc)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from neurons.cli import main

    sys.exit(main(["miner", *sys.argv[1:]]))
