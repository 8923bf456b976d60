"""``axongate localnet``: create the local chain, register hotkeys, and show a subnet's state.

``init`` and ``register`` administer the embedded local chain (they stand in for subnet creation,
burned registration and staking). ``status`` reads any network through the chain seam, so
``--network finney`` shows the same table for a live subnet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from protocol.errors import ConfigError

__all__ = ["add_commands"]

DEFAULT_CONFIG = Path("configs/localnet.toml")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("localnet", help="Run a local chain and inspect subnets.")
    commands = parser.add_subparsers(dest="localnet_command", metavar="SUBCOMMAND", required=True)

    init = commands.add_parser("init", help="Create the local chain with one subnet.")
    _add_location(init)
    init.add_argument(
        "--config", type=Path, help=f"Hyperparameters TOML (default: {DEFAULT_CONFIG} when present, else built-ins)."
    )
    init.add_argument("--block-time-s", type=float, help="Override the seconds per block (finney: 12).")
    init.add_argument("--overwrite", action="store_true", help="Replace an existing local chain.")
    init.set_defaults(func=_init_command)

    register = commands.add_parser("register", help="Register a wallet's hotkey with stake (and a permit).")
    _add_location(register)
    register.add_argument("--netuid", type=int, default=1)
    register.add_argument(
        "--wallet", "--wallet-name", dest="wallet_name", default="default", help="Wallet (coldkey) name."
    )
    register.add_argument("--hotkey", "--wallet-hotkey", dest="wallet_hotkey", default="default", help="Hotkey name.")
    register.add_argument("--wallet-path", type=Path, default=Path("~/.bittensor/wallets"))
    register.add_argument("--stake", type=float, default=0.0, help="Stake in alpha.")
    register.add_argument("--validator", action="store_true", help="Grant a validator permit.")
    register.set_defaults(func=_register_command)

    status = commands.add_parser("status", help="Show neurons, endpoints, scores and weights.")
    _add_location(status)
    status.add_argument("--network", default="local", help="local | finney | test | ws(s)://endpoint")
    status.add_argument("--netuid", type=int, default=1)
    status.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    status.set_defaults(func=_status_command)


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, help="Data directory (default: $AXONGATE_HOME or ~/.axongate).")
    parser.add_argument("--path", type=Path, help="Local chain file (default: <home>/localnet/chain.sqlite).")


def _chain_path(args: argparse.Namespace) -> Path:
    from neurons.settings import default_home

    from .localnet import default_localnet_path

    if args.path:
        return Path(args.path).expanduser()
    return default_localnet_path(Path(args.home).expanduser() if args.home else default_home())


def _init_command(args: argparse.Namespace) -> int:
    from .localnet import LocalnetParams, init_localnet, load_localnet_params

    config = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    params = load_localnet_params(config) if config else LocalnetParams()
    if args.block_time_s is not None:
        params = LocalnetParams(**{**params.model_dump(), "block_time_s": args.block_time_s})
    path = _chain_path(args)
    init_localnet(path, params, overwrite=args.overwrite)
    source = config or "built-in defaults"
    print(f"local chain created at {path} (subnet {params.netuid}, {params.block_time_s}s blocks, from {source})")
    return 0


def _register_command(args: argparse.Namespace) -> int:
    from neurons.settings import WalletConfig
    from neurons.wallets import load_wallet

    from .localnet import register_neuron

    if args.stake < 0:
        raise ConfigError(f"--stake must be non-negative, got {args.stake}")
    wallet = load_wallet(WalletConfig(name=args.wallet_name, hotkey=args.wallet_hotkey, path=args.wallet_path))
    hotkey, coldkey = wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address
    uid = register_neuron(
        _chain_path(args), args.netuid, hotkey, coldkey, stake=args.stake, validator_permit=args.validator
    )
    role = "validator" if args.validator else "miner"
    print(f"uid {uid}: {args.wallet_name}/{args.wallet_hotkey} {hotkey} ({role}, stake {args.stake:g} alpha)")
    return 0


def _status_command(args: argparse.Namespace) -> int:
    from neurons.settings import default_home

    from .config import ChainConfig

    home = Path(args.home).expanduser() if args.home else default_home()
    if args.network != "local" and args.path:
        raise ConfigError("--path only applies to --network local")
    config = ChainConfig(network=args.network, netuid=args.netuid, localnet_path=args.path)
    status = asyncio.run(_collect_status(config, home))
    print(json.dumps(status, indent=2) if args.json else render_status(status))
    return 0


async def _collect_status(config: Any, home: Path) -> dict:
    from .sdk import open_chain

    async with await open_chain(config, home) as chain:
        metagraph = await chain.metagraph()
        weights = await chain.weights()
        rate_limit = await chain.weights_rate_limit()
        return {
            "chain": chain.label,
            "netuid": metagraph.netuid,
            "block": metagraph.block,
            "weights_rate_limit": rate_limit,
            "neurons": [
                {
                    "uid": n.uid,
                    "hotkey": n.hotkey,
                    "stake": n.stake,
                    "validator_permit": n.validator_permit,
                    "endpoint": n.endpoint,
                    "last_update": n.last_update,
                    "incentive": n.incentive,
                    "dividends": n.dividends,
                }
                for n in metagraph.neurons
            ],
            "weights": {str(uid): {str(k): v for k, v in row.items()} for uid, row in weights.items()},
        }


def render_status(status: dict) -> str:
    """The status table: one row per uid, then each validator's weights."""
    lines = [
        f"{status['chain']}  subnet {status['netuid']}  block {status['block']}  "
        f"weights rate limit {status['weights_rate_limit']} blocks",
        "",
        f"{'uid':>4}  {'hotkey':<12}  {'stake':>12}  {'permit':<6}  {'endpoint':<24}  "
        f"{'last update':>11}  {'incentive':>9}  {'dividends':>9}",
    ]
    for n in status["neurons"]:
        hotkey = f"{n['hotkey'][:5]}…{n['hotkey'][-5:]}"
        lines.append(
            f"{n['uid']:>4}  {hotkey:<12}  {n['stake']:>12.3f}  {'yes' if n['validator_permit'] else 'no':<6}  "
            f"{n['endpoint'] or '-':<24}  {n['last_update']:>11}  {n['incentive']:>9.4f}  {n['dividends']:>9.4f}"
        )
    lines.append("")
    if not status["weights"]:
        lines.append("no weights set yet")
    for uid, row in status["weights"].items():
        shares = ", ".join(f"{dest}: {value:.3f}" for dest, value in row.items()) or "(empty)"
        lines.append(f"weights of uid {uid}: {shares}")
    return "\n".join(lines)
