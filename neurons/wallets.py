"""Bittensor wallets for the neurons: non-interactive creation and checked loading.

Wallets are ordinary SDK wallets in btcli's layout (``<path>/<name>/coldkey``,
``coldkeypub.txt``, ``hotkeys/<hotkey>``), so btcli and axongate use the same files. The hotkey
signs chain writes and requests; the coldkey is never unlocked by the neurons.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.errors import ConfigError

from .settings import WalletConfig

if TYPE_CHECKING:
    import bittensor as bt

__all__ = ["add_commands", "create_wallet", "load_wallet"]

NO_PASSWORD_WARNING = (
    "warning: the coldkey is stored WITHOUT a password. That is fine for a local chain; "
    "for real funds create the coldkey with btcli (or pass --password-env) and keep it off this machine."
)


def create_wallet(
    name: str,
    hotkey: str,
    path: Path,
    *,
    overwrite: bool = False,
    coldkey_password: str | None = None,
    on_mnemonic: object = None,
) -> bt.Wallet:
    """Create the wallet's missing keys without prompting; existing keys are kept.

    With ``overwrite`` both keys are replaced (the old ones are lost). The coldkey is encrypted
    only when ``coldkey_password`` is given; hotkeys are plaintext, as btcli makes them.
    ``on_mnemonic(role, mnemonic)`` receives each new key's mnemonic (default: discarded).
    """
    import bittensor as bt

    if not name or "/" in name or not hotkey or "/" in hotkey:
        raise ConfigError(f"wallet name and hotkey must be non-empty and contain no '/': {name!r}/{hotkey!r}")
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))
    report = on_mnemonic if callable(on_mnemonic) else (lambda _role, _mnemonic: None)
    if overwrite or not wallet.coldkeypub_file.exists_on_device():
        wallet.create_new_coldkey(
            use_password=coldkey_password is not None,
            coldkey_password=coldkey_password,
            overwrite=True,
            on_mnemonic=lambda mnemonic: report("coldkey", mnemonic),
        )
    if overwrite or not wallet.hotkey_file.exists_on_device():
        wallet.create_new_hotkey(
            use_password=False, overwrite=True, on_mnemonic=lambda mnemonic: report("hotkey", mnemonic)
        )
    return wallet


def load_wallet(config: WalletConfig) -> bt.Wallet:
    """The configured wallet with its hotkey loaded; ``ConfigError`` names any missing file."""
    import bittensor as bt
    from bittensor.sp_core import KeyfileError

    wallet = bt.Wallet(name=config.name, hotkey=config.hotkey, path=str(config.expanded_path()))
    for label, keyfile in (("hotkey", wallet.hotkey_file), ("coldkeypub", wallet.coldkeypub_file)):
        if not keyfile.exists_on_device():
            raise ConfigError(
                f"wallet {config.name}/{config.hotkey}: {label} file not found at {keyfile.path}; "
                "create it with `axongate wallet create` or btcli"
            )
    try:
        _ = wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address
    except (KeyfileError, OSError, ValueError) as exc:
        raise ConfigError(
            f"wallet {config.name}/{config.hotkey}: cannot read keys under {wallet.path}: {exc}"
        ) from None
    return wallet


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("wallet", help="Create bittensor wallets (btcli-compatible).")
    commands = parser.add_subparsers(dest="wallet_command", metavar="SUBCOMMAND", required=True)
    create = commands.add_parser("create", help="Create a coldkey and hotkey without prompting.")
    create.add_argument("--name", default="default", help="Wallet (coldkey) name.")
    create.add_argument("--hotkey", default="default", help="Hotkey name.")
    create.add_argument(
        "--path", type=Path, default=Path("~/.bittensor/wallets"), help="Wallets folder (btcli's default)."
    )
    create.add_argument("--overwrite", action="store_true", help="Replace existing keys (they are lost).")
    create.add_argument(
        "--password-env", metavar="VAR", help="Encrypt the coldkey with the password held in environment variable VAR."
    )
    create.add_argument("--show-mnemonic", action="store_true", help="Print the new keys' mnemonics.")
    create.set_defaults(func=_create_command)


def _create_command(args: argparse.Namespace) -> int:
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise ConfigError(f"--password-env {args.password_env}: the variable is unset or empty")

    def show(role: str, mnemonic: str) -> None:
        if args.show_mnemonic:
            print(f"{role} mnemonic: {mnemonic}")

    wallet = create_wallet(
        args.name, args.hotkey, args.path, overwrite=args.overwrite, coldkey_password=password, on_mnemonic=show
    )
    print(f"wallet {args.name}/{args.hotkey} under {Path(args.path).expanduser()}")
    print(f"  coldkey {wallet.coldkeypub.ss58_address}")
    print(f"  hotkey  {wallet.hotkey.ss58_address}")
    if password is None:
        print(NO_PASSWORD_WARNING, file=sys.stderr)
    return 0
