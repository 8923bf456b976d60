"""Helpers shared by the chain tests: a controllable clock, a populated local subnet, a state digest."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt

from neurons.chain.localnet import LocalnetParams, init_localnet, register_neuron

NETUID = 1


class FakeClock:
    """Wall-clock stand-in: blocks advance only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance_blocks(self, blocks: int, block_time_s: float = 1.0) -> None:
        self.t += blocks * block_time_s


@dataclass
class Subnet:
    path: Path
    clock: FakeClock
    validator: bt.Wallet
    miners: list[bt.Wallet]
    outsider: bt.Wallet
    """A wallet whose hotkey is not registered."""


def make_subnet(tmp_path: Path, wallets: dict[str, bt.Wallet], **params: object) -> Subnet:
    clock = FakeClock()
    path = tmp_path / "chain.sqlite"
    init_localnet(path, LocalnetParams(**{"block_time_s": 1.0, "tempo": 10, **params}), now=clock)
    validator = wallets["validator"]
    register_neuron(
        path,
        NETUID,
        validator.hotkey.ss58_address,
        validator.coldkeypub.ss58_address,
        stake=1000.0,
        validator_permit=True,
        now=clock,
    )
    miners = [wallets[f"miner{i}"] for i in range(3)]
    for miner in miners:
        register_neuron(
            path,
            NETUID,
            miner.hotkey.ss58_address,
            miner.coldkeypub.ss58_address,
            stake=0.0,
            validator_permit=False,
            now=clock,
        )
    return Subnet(path=path, clock=clock, validator=validator, miners=miners, outsider=wallets["outsider"])


def chain_state(path: Path) -> dict[str, list[tuple]]:
    """Every row of every chain table: equal before and after means nothing was written."""
    conn = sqlite3.connect(path)
    try:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()
