"""The embedded local chain: one SQLite file that behaves like a subtensor subnet.

Create it with :func:`init_localnet` (hyperparameters from ``configs/localnet.toml``), register
hotkeys with :func:`register_neuron`, and hand :class:`LocalnetSubstrate` to ``bt.Client`` (or
use ``open_chain`` with ``network="local"``). Separate processes (miner, validator, CLI) open the
same file and see one chain; blocks advance with wall-clock time.

What is real: signatures are verified, and serving and weights are checked as subtensor checks
them (registration, rate limits, min weights, max weight, permits, version key), with subtensor's
error names. What is simplified: no balances, fees or registration burn (stake and permits are
assigned by the operator), no history (reads see the latest state), and the epoch is a reduced
Yuma (see ``_epoch``). Commit-reveal commits are stored but never revealed (no drand beacon).
"""

from __future__ import annotations

import math
import os
import secrets
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.errors import describe_validation_error

from . import _epoch, _store
from ._substrate import LocalnetSubstrate
from .records import LocalnetError

__all__ = [
    "LocalnetParams",
    "LocalnetSubstrate",
    "default_localnet_path",
    "init_localnet",
    "load_localnet_params",
    "register_neuron",
]

RAO_PER_ALPHA = 10**9
U16_MAX = 65_535
# ss58 of the all-zero account: the local subnet has no owner key.
_NO_OWNER = "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM"


class LocalnetParams(BaseModel):
    """Hyperparameters of the local subnet (``configs/localnet.toml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    netuid: int = Field(default=1, ge=1, le=4095, description="Subnet id the neurons use.")
    name: str = Field(default="axongate", min_length=1, max_length=32)
    symbol: str = Field(default="α", min_length=1, max_length=8)
    block_time_s: float = Field(default=1.0, gt=0, le=60, description="Seconds per block (finney: 12).")
    tempo: int = Field(default=20, ge=1, le=10_000, description="Blocks between epochs (finney: 360).")
    weights_rate_limit: int = Field(default=5, ge=0, description="Blocks between weight sets by one hotkey.")
    min_allowed_weights: int = Field(default=1, ge=0, description="Minimum non-zero weights per set.")
    max_weight_limit: float = Field(default=1.0, gt=0, le=1, description="Largest share one uid may get.")
    serving_rate_limit: int = Field(default=0, ge=0, description="Blocks between endpoint updates (finney: 50).")
    commit_reveal: bool = Field(default=False, description="Timelocked commit-reveal weights (never revealed here).")
    reveal_period_epochs: int = Field(default=1, ge=1)
    weights_version_key: int = Field(default=0, ge=0, description="Oldest weights version key accepted.")
    max_allowed_uids: int = Field(default=256, ge=1, le=4096)
    stake_threshold: float = Field(default=0.0, ge=0, description="Alpha a hotkey needs to set weights.")
    allow_internal_ips: bool = Field(default=True, description="Accept loopback/private endpoints (finney: no).")


def default_localnet_path(home: Path) -> Path:
    """Where the local chain lives under the data directory."""
    return Path(home) / "localnet" / "chain.sqlite"


def load_localnet_params(path: Path) -> LocalnetParams:
    """Read hyperparameters from a TOML file; raises ``LocalnetError`` naming bad fields."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LocalnetError(f"localnet config not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LocalnetError(f"{path} is not valid TOML: {exc}") from None
    try:
        return LocalnetParams(**data)
    except ValidationError as exc:
        raise LocalnetError(f"invalid localnet config {path}: {describe_validation_error(exc)}") from None


def init_localnet(
    path: Path, params: LocalnetParams | None = None, *, overwrite: bool = False, now: Callable[[], float] = time.time
) -> None:
    """Create a chain file holding one subnet; genesis (block 1) is now.

    The file is built under a temporary name and renamed into place, so a crash never leaves a
    half-initialised chain. Raises ``LocalnetError`` if a chain exists and ``overwrite`` is false.
    """
    params = params or LocalnetParams()
    path = Path(path)
    if path.exists() and not overwrite:
        raise LocalnetError(f"a local chain already exists at {path}; use --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _remove_chain_files(staging)
    genesis_time = now()
    conn = _store.connect(staging)
    try:
        _store.create_schema(
            conn,
            {
                "schema_version": str(_store.SCHEMA_VERSION),
                "genesis_time": repr(genesis_time),
                "block_time_s": repr(params.block_time_s),
                "genesis_hash": secrets.token_bytes(32).hex(),
            },
        )
        with _store.write_transaction(conn):
            conn.execute(
                "INSERT INTO subnets VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    params.netuid,
                    params.name,
                    params.symbol,
                    params.tempo,
                    params.weights_rate_limit,
                    params.min_allowed_weights,
                    round(params.max_weight_limit * U16_MAX),
                    params.serving_rate_limit,
                    int(params.commit_reveal),
                    params.reveal_period_epochs,
                    params.weights_version_key,
                    params.max_allowed_uids,
                    round(params.stake_threshold * RAO_PER_ALPHA),
                    int(params.allow_internal_ips),
                    _NO_OWNER,
                    _NO_OWNER,
                    1,
                    0,
                    0,
                ),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    _remove_chain_files(path)
    os.replace(staging, path)
    _remove_chain_files(staging)


def _remove_chain_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def register_neuron(
    path: Path,
    netuid: int,
    hotkey_ss58: str,
    coldkey_ss58: str,
    *,
    stake: float,
    validator_permit: bool,
    now: Callable[[], float] = time.time,
) -> int:
    """Give a hotkey a uid on the local subnet (or update its stake and permit); returns the uid.

    Stands in for burned registration plus staking, which the local chain does not model.
    Raises ``LocalnetError`` for a missing chain or subnet, a bad address, a full subnet, or a
    hotkey already registered under another coldkey.
    """
    from bittensor import sp_core

    for label, address in (("hotkey", hotkey_ss58), ("coldkey", coldkey_ss58)):
        try:
            sp_core.ss58_decode(address)
        except Exception:
            raise LocalnetError(f"{label} {address!r} is not a valid ss58 address") from None
    if not math.isfinite(stake) or stake < 0:
        raise LocalnetError(f"stake must be a finite non-negative amount of alpha, got {stake}")
    conn = _open_existing(path)
    try:
        clock = _store.load_clock(conn, now)
        with _store.write_transaction(conn):
            block = clock.block()
            _epoch.run_due_epochs(conn, block)  # scores up to now use the stake as it was
            subnet = conn.execute("SELECT max_allowed_uids FROM subnets WHERE netuid = ?", (netuid,)).fetchone()
            if subnet is None:
                raise LocalnetError(f"subnet {netuid} does not exist on the local chain at {path}")
            existing = conn.execute(
                "SELECT uid, coldkey FROM neurons WHERE netuid = ? AND hotkey = ?", (netuid, hotkey_ss58)
            ).fetchone()
            stake_rao = round(stake * RAO_PER_ALPHA)
            if existing is not None:
                if existing[1] != coldkey_ss58:
                    raise LocalnetError(f"hotkey {hotkey_ss58} is already registered under coldkey {existing[1]}")
                conn.execute(
                    "UPDATE neurons SET stake_rao = ?, validator_permit = ? WHERE netuid = ? AND uid = ?",
                    (stake_rao, int(validator_permit), netuid, existing[0]),
                )
                return int(existing[0])
            uid = conn.execute("SELECT COUNT(*) FROM neurons WHERE netuid = ?", (netuid,)).fetchone()[0]
            if uid >= subnet[0]:
                raise LocalnetError(f"subnet {netuid} is full ({subnet[0]} uids)")
            conn.execute(
                "INSERT INTO neurons (netuid, uid, hotkey, coldkey, stake_rao, validator_permit, registered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (netuid, uid, hotkey_ss58, coldkey_ss58, stake_rao, int(validator_permit), block),
            )
            return int(uid)
    finally:
        conn.close()


def _open_existing(path: Path):
    if not Path(path).is_file():
        raise LocalnetError(f"no local chain at {path}; create it with `axongate localnet init`")
    return _store.connect(Path(path))
