"""Several processes on one local chain file: shared state, and crash safety under SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import bittensor as bt
import pytest

from neurons.chain import ChainConfig, open_chain
from neurons.chain.localnet import LocalnetParams, init_localnet, register_neuron

WORKER = Path(__file__).with_name("chain_worker.py")
pytestmark = pytest.mark.slow


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )


def _real_time_chain(tmp_path: Path, wallets: dict[str, bt.Wallet], block_time_s: float) -> Path:
    path = tmp_path / "chain.sqlite"
    init_localnet(path, LocalnetParams(block_time_s=block_time_s, serving_rate_limit=0))
    for name in ("validator", "miner0"):
        wallet = wallets[name]
        register_neuron(
            path, 1, wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=10.0, validator_permit=True
        )
    return path


async def test_endpoint_served_by_one_process_appears_in_another(tmp_path: Path, wallets: dict[str, bt.Wallet]) -> None:
    path = _real_time_chain(tmp_path, wallets, block_time_s=1.0)
    wallet_root = Path(wallets["miner0"].path)
    hotkey = wallets["miner0"].hotkey.ss58_address
    async with await open_chain(ChainConfig(localnet_path=path), tmp_path) as chain:
        assert (await chain.metagraph()).serving() == ()
        worker = _spawn("serve", str(path), str(wallet_root), "miner0", "8123")
        deadline = time.monotonic() + 60
        seen = None
        while seen is None and time.monotonic() < deadline:  # poll as a neuron refreshing its view would
            graph = await chain.metagraph()
            record = graph.by_hotkey(hotkey)
            if record is not None and record.endpoint is not None:
                seen = (graph.block, record.endpoint)
            else:
                await asyncio.sleep(0.05)
        out, err = await _communicate(worker)
        assert worker.returncode == 0, err
        served_block = int(out.split()[1])
        assert seen is not None, "the endpoint never appeared"
        seen_block, endpoint = seen
        assert endpoint == "127.0.0.1:8123"
        assert seen_block - served_block <= 2


async def _communicate(process: subprocess.Popen, timeout_s: float = 60.0) -> tuple[str, str]:
    import anyio

    return await anyio.to_thread.run_sync(lambda: process.communicate(timeout=timeout_s))


def test_sigkill_mid_writes_leaves_a_consistent_chain(tmp_path: Path, wallets: dict[str, bt.Wallet]) -> None:
    path = _real_time_chain(tmp_path, wallets, block_time_s=0.2)
    miner = wallets["miner0"]
    worker = _spawn("hammer", str(path), str(Path(miner.path)), "miner0")
    reported: list[int] = []
    deadline = time.monotonic() + 60
    try:
        assert worker.stdout is not None
        while len(reported) < 25 and time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break
            reported.append(int(line.split()[1]))
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert len(reported) >= 25, worker.stderr.read() if worker.stderr else ""

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        logged = [
            json.loads(params)["params"]["port"]
            for (params,) in conn.execute(
                "SELECT params FROM extrinsics WHERE signer = ? ORDER BY id", (miner.hotkey.ss58_address,)
            )
        ]
        (axon_port,) = conn.execute("SELECT port FROM axons WHERE hotkey = ?", (miner.hotkey.ss58_address,)).fetchone()
        (nonce,) = conn.execute("SELECT nonce FROM accounts WHERE address = ?", (miner.hotkey.ss58_address,)).fetchone()
    finally:
        conn.close()
    # Every confirmed write is there; at most one more committed before its confirmation was printed.
    assert logged[: len(reported)] == reported
    assert len(logged) - len(reported) in (0, 1)
    # No half-written extrinsic: the log, the axon and the nonce all moved together.
    assert axon_port == logged[-1]
    assert nonce == len(logged)
    asyncio.run(_serve_once(path, miner, tmp_path))  # the killed writer left no lock behind


async def _serve_once(path: Path, wallet: bt.Wallet, home: Path) -> None:
    async with await open_chain(ChainConfig(localnet_path=path), home) as chain:
        result = await chain.serve_axon(wallet, "127.0.0.1", 4242)
        assert result.success, result.message
        assert (await chain.metagraph()).by_hotkey(wallet.hotkey.ss58_address).port == 4242
