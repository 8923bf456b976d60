"""A second process for the chain tests: serves endpoints on a shared local chain.

``python chain_worker.py serve CHAIN WALLETS NAME PORT`` serves once and prints ``served <block>``.
``python chain_worker.py hammer CHAIN WALLETS NAME`` serves port after port until killed, printing
``committed <port>`` after each write the chain confirmed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from neurons.chain import ChainConfig, open_chain
from neurons.settings import WalletConfig
from neurons.wallets import load_wallet


async def main(mode: str, chain_path: Path, wallets: Path, name: str, port: int) -> None:
    wallet = load_wallet(WalletConfig(name=name, hotkey="hk", path=wallets))
    async with await open_chain(ChainConfig(localnet_path=chain_path), chain_path.parent) as chain:
        if mode == "serve":
            result = await chain.serve_axon(wallet, "127.0.0.1", port)
            result.raise_for_failure()
            print(f"served {result.block}", flush=True)
            return
        while True:
            port = port % 60000 + 1
            result = await chain.serve_axon(wallet, "127.0.0.1", port)
            result.raise_for_failure()
            print(f"committed {port}", flush=True)


if __name__ == "__main__":
    mode, chain_path, wallets, name = sys.argv[1:5]
    start = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    asyncio.run(main(mode, Path(chain_path), Path(wallets), name, start))
