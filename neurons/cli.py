"""The ``axongate`` command line.

Each command group lives beside the code it drives and contributes its sub-commands through an
``add_commands(subparsers)`` function; handlers take the parsed ``argparse.Namespace`` and return
an exit code. Heavy imports (torch, bittensor) happen inside handlers, so ``axongate --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from protocol.errors import AxongateError

__all__ = ["main"]

COMMAND_MODULES = (
    "neurons.miner",
    "neurons.validator",
    "neurons.models.cli",
    "neurons.chain.cli",
    "neurons.wallets",
    "neurons.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="axongate", description="Run an LLM-inference subnet on Bittensor.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``axongate`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AxongateError as exc:
        print(f"axongate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
