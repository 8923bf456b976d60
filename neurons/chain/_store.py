"""The local chain's SQLite file: schema, connections, the wall-clock block clock and block hashes.

One file holds the whole chain. It runs in WAL mode so readers never block the single writer, and
every state change happens inside ``BEGIN IMMEDIATE`` so writers in several processes serialise on
the database lock: a transaction either commits completely or leaves no trace, even when its
process is killed half-way.

Blocks are not produced by anyone: the head is ``1 + floor((now - genesis_time) / block_time_s)``,
so every process that opens the file agrees on the block number without a running node.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE subnets (
    netuid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    symbol TEXT NOT NULL,
    tempo INTEGER NOT NULL,
    weights_rate_limit INTEGER NOT NULL,
    min_allowed_weights INTEGER NOT NULL,
    max_weights_limit INTEGER NOT NULL,
    serving_rate_limit INTEGER NOT NULL,
    commit_reveal INTEGER NOT NULL,
    reveal_period_epochs INTEGER NOT NULL,
    weights_version_key INTEGER NOT NULL,
    max_allowed_uids INTEGER NOT NULL,
    stake_threshold_rao INTEGER NOT NULL,
    allow_internal_ips INTEGER NOT NULL,
    owner_hotkey TEXT NOT NULL,
    owner_coldkey TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    last_epoch_block INTEGER NOT NULL,
    epoch_index INTEGER NOT NULL
);
CREATE TABLE neurons (
    netuid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    coldkey TEXT NOT NULL,
    stake_rao INTEGER NOT NULL,
    validator_permit INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    last_update INTEGER NOT NULL DEFAULT 0,
    rank INTEGER NOT NULL DEFAULT 0,
    trust INTEGER NOT NULL DEFAULT 0,
    consensus INTEGER NOT NULL DEFAULT 0,
    incentive INTEGER NOT NULL DEFAULT 0,
    dividends INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (netuid, uid),
    UNIQUE (netuid, hotkey)
);
CREATE TABLE axons (
    netuid INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    block INTEGER NOT NULL,
    version INTEGER NOT NULL,
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    ip_type INTEGER NOT NULL,
    protocol INTEGER NOT NULL,
    PRIMARY KEY (netuid, hotkey)
);
CREATE TABLE certificates (
    netuid INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    algorithm INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    PRIMARY KEY (netuid, hotkey)
);
CREATE TABLE weights (
    netuid_index INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    dest INTEGER NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (netuid_index, uid, dest)
);
CREATE TABLE weight_commits (
    netuid_index INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    commit_block INTEGER NOT NULL,
    ciphertext BLOB NOT NULL,
    reveal_round INTEGER NOT NULL
);
CREATE TABLE accounts (address TEXT PRIMARY KEY, nonce INTEGER NOT NULL);
CREATE TABLE extrinsics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    block INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    signer TEXT NOT NULL,
    module TEXT NOT NULL,
    function TEXT NOT NULL,
    params TEXT NOT NULL
);
CREATE INDEX extrinsics_by_block ON extrinsics (block);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open the chain file with the settings every process must share.

    ``isolation_level=None`` leaves transactions to explicit ``BEGIN``; WAL lets readers run beside
    the writer; ``synchronous=NORMAL`` keeps commits durable across process crashes (WAL frames
    are written before the commit returns), which is the failure the local chain guards against.
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def create_schema(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Create the tables, then the ``meta`` rows (callers build the file under a temporary name)."""
    conn.executescript("BEGIN IMMEDIATE;\n" + _SCHEMA + "\nCOMMIT;")
    with write_transaction(conn):
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items()))


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception.

    IMMEDIATE takes the write lock up front, so two processes validating against the same state
    cannot both commit a write that only one of them should have been allowed.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A deferred transaction: every SELECT inside sees one consistent snapshot."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


@dataclass(frozen=True)
class ChainClock:
    """Maps wall-clock time to block numbers and block numbers to hashes."""

    genesis_time: float
    block_time_s: float
    genesis_hash: bytes
    now: Callable[[], float] = time.time

    def block(self) -> int:
        """The head block: block 1 starts at genesis, one more every ``block_time_s`` seconds."""
        return 1 + max(0, int((self.now() - self.genesis_time) // self.block_time_s))

    def block_hash(self, block: int) -> str:
        """A 32-byte hash whose first 8 bytes are the block number, the rest bound to this chain."""
        digest = hashlib.blake2b(self.genesis_hash + block.to_bytes(8, "big"), digest_size=24).hexdigest()
        return f"0x{block:016x}{digest}"

    def block_of(self, block_hash: str) -> int | None:
        """The block a hash names, or None when it is not a hash of this chain."""
        text = block_hash.removeprefix("0x")
        if len(text) != 64:
            return None
        try:
            block = int(text[:16], 16)
        except ValueError:
            return None
        return block if self.block_hash(block) == block_hash else None

    def timestamp_ms(self, block: int) -> int:
        return int((self.genesis_time + (block - 1) * self.block_time_s) * 1000)


def load_clock(conn: sqlite3.Connection, now: Callable[[], float] = time.time) -> ChainClock:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    version = int(meta.get("schema_version", "0"))
    if version != SCHEMA_VERSION:
        raise ValueError(f"unsupported local chain schema version {version} (expected {SCHEMA_VERSION})")
    return ChainClock(
        genesis_time=float(meta["genesis_time"]),
        block_time_s=float(meta["block_time_s"]),
        genesis_hash=bytes.fromhex(meta["genesis_hash"]),
        now=now,
    )
