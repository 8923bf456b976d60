"""Cost of going through the SDK on the local chain, as ratios to plain SQLite doing the same work.

Both sides run in this process, side by side, on one 64-uid subnet (1 validator, 63 miners):

- read:  ``SdkChain.metagraph()`` (runtime call, SDK decoding, seam conversion) versus one SQL
         read of the same neuron and axon rows;
- write: ``SdkChain.set_weights`` over 63 uids (SDK preflight reads, normalisation, signing,
         signature check, validation, one transaction) versus one raw ``BEGIN IMMEDIATE``
         transaction writing the same 63 weight rows.

Each figure is the median over ``--runs`` runs of the mean over ``--iterations`` calls.
Usage: ``python scripts/bench/localnet_chain.py [--runs 5] [--iterations 40]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


async def measure(runs: int, iterations: int) -> dict[str, tuple[float, float]]:
    import bittensor as bt

    from neurons.chain import ChainConfig, open_chain
    from neurons.chain.localnet import LocalnetParams, init_localnet, register_neuron
    from neurons.wallets import create_wallet

    work = Path(tempfile.mkdtemp(prefix="localnet-bench-"))
    os.environ["HOME"] = str(work)  # keep the SDK's symbol cache out of the real home
    path = work / "chain.sqlite"
    init_localnet(path, LocalnetParams(weights_rate_limit=0, serving_rate_limit=0, max_allowed_uids=64))
    validator = create_wallet("validator", "hk", work / "wallets")
    register_neuron(
        path, 1, validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, stake=1000, validator_permit=True
    )
    for i in range(63):
        hotkey = bt.sp_core.Keypair.create_from_uri(f"//miner{i}").ss58_address
        register_neuron(path, 1, hotkey, validator.coldkeypub.ss58_address, stake=0, validator_permit=False)
    weights = {uid: float(uid) for uid in range(1, 64)}
    reference = sqlite3.connect(path, isolation_level=None)
    reference.execute("PRAGMA synchronous = NORMAL")  # the chain's own setting

    def sql_read() -> list:
        return reference.execute(
            "SELECT n.*, a.ip, a.port, a.protocol FROM neurons n "
            "LEFT JOIN axons a ON a.netuid = n.netuid AND a.hotkey = n.hotkey WHERE n.netuid = 1 ORDER BY n.uid"
        ).fetchall()

    def sql_write() -> None:
        reference.execute("BEGIN IMMEDIATE")
        reference.execute("DELETE FROM weights WHERE netuid_index = 1 AND uid = 0")
        reference.executemany(
            "INSERT INTO weights VALUES (1, 0, ?, ?)", [(uid, round(w * 65535 / 63)) for uid, w in weights.items()]
        )
        reference.execute("UPDATE neurons SET last_update = last_update WHERE netuid = 1 AND uid = 0")
        reference.execute("COMMIT")

    results: dict[str, tuple[list[float], list[float]]] = {"read": ([], []), "write": ([], [])}
    async with await open_chain(ChainConfig(localnet_path=path), work) as chain:
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(iterations):
                await chain.metagraph()
            results["read"][0].append((time.perf_counter() - start) / iterations)
            start = time.perf_counter()
            for _ in range(iterations):
                sql_read()
            results["read"][1].append((time.perf_counter() - start) / iterations)

            start = time.perf_counter()
            for _ in range(iterations):
                (await chain.set_weights(validator, weights)).raise_for_failure()
            results["write"][0].append((time.perf_counter() - start) / iterations)
            start = time.perf_counter()
            for _ in range(iterations):
                sql_write()
            results["write"][1].append((time.perf_counter() - start) / iterations)
    reference.close()
    return {k: (statistics.median(sdk), statistics.median(ref)) for k, (sdk, ref) in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    results = asyncio.run(measure(args.runs, args.iterations))
    print("| operation | through the SDK | plain SQLite | ratio |")
    print("|---|---|---|---|")
    for name, (sdk, ref) in results.items():
        print(f"| {name} | {sdk * 1e3:.2f} ms | {ref * 1e3:.3f} ms | {sdk / ref:.0f}x |")


if __name__ == "__main__":
    main()
