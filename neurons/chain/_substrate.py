"""``LocalnetSubstrate``: the SDK's ``Substrate`` protocol backed by the local chain's SQLite file.

``bt.Client(substrate=LocalnetSubstrate(path))`` runs the SDK's own code paths (metagraph runtime
call, the ``SetWeights`` preflight reads, ``ServeAxon``/``ServeAxonTls``, ``execute``) against a
file that several processes share. Every database call runs on one worker thread per instance,
so the event loop never waits on SQLite's lock.

Extrinsics are signed through the SDK (``keypair.sign`` on a payload that binds the genesis hash,
the account nonce and the call) and verified against the claimed signer's ss58 address before
anything is written, as a node's transaction pool would.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bittensor import sp_core
from bittensor.balance import Balance
from bittensor.result import ChainError, ConnectionNotReady, ExtrinsicResult

from . import _dispatch, _epoch, _state, _store

T = TypeVar("T")
SIGNING_DOMAIN = b"axongate-localnet/extrinsic/1"
SPEC_VERSION = 1


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    raise TypeError(f"cannot encode {type(value).__name__} in a local chain call")


def encode_call(module: str, function: str, params: dict) -> str:
    """Canonical JSON of a call: what is signed (with the nonce) and what the extrinsic log keeps."""
    return json.dumps(
        {"module": module, "function": function, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        default=_json_default,
    )


def signing_payload(genesis_hash: bytes, nonce: int, call_json: str) -> bytes:
    """The bytes a signer signs; hashed when longer than 256 bytes, as substrate does."""
    payload = SIGNING_DOMAIN + genesis_hash + nonce.to_bytes(8, "little") + call_json.encode()
    return hashlib.blake2b(payload, digest_size=32).digest() if len(payload) > 256 else payload


def _failure(name: str, message: str) -> ExtrinsicResult:
    return ExtrinsicResult(success=False, message=message, error=ChainError(message, name))


class LocalnetSubstrate:
    """The local chain as an SDK ``Substrate``; one instance per client, any number per file."""

    def __init__(self, path: Path, *, now: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.token_symbols: dict[int, str] = {}
        self._now = now
        self._conn: sqlite3.Connection | None = None
        self._clock: _store.ChainClock | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._next_epoch_due = 0

    def __repr__(self) -> str:
        return f"LocalnetSubstrate({str(self.path)!r})"

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance(int(rao), netuid, self.token_symbols.get(netuid) if netuid else None)

    # Lifecycle --------------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._conn is not None:
            return
        if not self.path.is_file():
            raise ChainError(f"no local chain at {self.path}; create it with `axongate localnet init`")
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="localnet")
        loop = asyncio.get_running_loop()
        conn = None
        try:
            conn = await loop.run_in_executor(worker, _store.connect, self.path)
            self._clock = await loop.run_in_executor(worker, _store.load_clock, conn, self._now)
        except (sqlite3.Error, ValueError, KeyError) as exc:
            if conn is not None:
                await loop.run_in_executor(worker, conn.close)
            worker.shutdown(wait=False)
            raise ChainError(f"cannot open the local chain at {self.path}: {exc}") from exc
        self._conn, self._worker = conn, worker

    async def close(self) -> None:
        conn, worker = self._conn, self._worker
        self._conn = self._worker = None
        if conn is not None and worker is not None:
            await asyncio.get_running_loop().run_in_executor(worker, conn.close)
            worker.shutdown(wait=True)

    @property
    def clock(self) -> _store.ChainClock:
        if self._clock is None:
            raise ConnectionNotReady("local chain is not open; use `async with Client(...)` or connect() first")
        return self._clock

    def _open_connection(self) -> sqlite3.Connection:
        if self._conn is None or self._worker is None:
            raise ConnectionNotReady("local chain is not open; use `async with Client(...)` or connect() first")
        return self._conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        self._open_connection()
        assert self._worker is not None
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def _catch_up(self, conn: sqlite3.Connection, block: int) -> None:
        """Run due epochs before reading, so scores are current without a block producer."""
        if block < self._next_epoch_due:
            return
        with _store.write_transaction(conn):
            _epoch.run_due_epochs(conn, block)
            self._next_epoch_due = _epoch.next_epoch_due(conn)

    async def _read(self, fn: Callable[[sqlite3.Connection, int], T], block_hash: str | None) -> T:
        block = self._pinned_block(block_hash)
        conn = self._open_connection()

        def work() -> T:
            self._catch_up(conn, self.clock.block())
            with _store.read_transaction(conn):
                return fn(conn, block)

        try:
            return await self._run(work)
        except sqlite3.Error as exc:
            raise ChainError(f"local chain read failed: {exc}") from exc

    def _pinned_block(self, block_hash: str | None) -> int:
        head = self.clock.block()
        if block_hash is None:
            return head
        block = self.clock.block_of(block_hash)
        if block is None or block > head:
            raise ChainError(f"unknown block hash {block_hash}")
        return block

    # Reads ------------------------------------------------------------------------------------

    async def block_hash(self, block: int | None = None) -> str | None:
        head = self.clock.block()
        target = head if block is None else int(block)
        return None if target > head or target < 0 else self.clock.block_hash(target)

    async def block_number(self) -> int:
        return self.clock.block()

    async def finalized_block_number(self) -> int:
        return self.clock.block()  # one author, no forks: a block is final once produced

    async def block_time(self) -> float:
        return self.clock.block_time_s

    async def spec_version(self) -> int:
        return SPEC_VERSION

    async def get_block(self, block_number: int | None = None, block_hash: str | None = None) -> dict | None:
        head = self.clock.block()
        number = self.clock.block_of(block_hash) if block_hash else (head if block_number is None else block_number)
        if number is None or not 0 <= number <= head:
            return None

        def rows(conn: sqlite3.Connection, _block: int) -> list[tuple]:
            sql = "SELECT idx, hash, signer, module, function, params FROM extrinsics WHERE block = ? ORDER BY idx"
            return conn.execute(sql, (number,)).fetchall()

        extrinsics = [
            {
                "extrinsic_hash": h,
                "address": s,
                "call": {"call_module": m, "call_function": f, "call_args": json.loads(p)},
            }
            for _i, h, s, m, f, p in await self._read(rows, None)
        ]
        header = {
            "number": number,
            "hash": self.clock.block_hash(number),
            "parentHash": self.clock.block_hash(number - 1) if number else None,
        }
        return {"header": header, "extrinsics": extrinsics}

    async def query(
        self, module: str, storage_function: str, params: list | None = None, block_hash: str | None = None
    ) -> Any:
        clock = self.clock
        return await self._read(
            lambda conn, block: _state.query(conn, clock, block, module, storage_function, params or []), block_hash
        )

    async def map_has_entries(
        self, module: str, storage_function: str, params: list, block_hash: str | None = None
    ) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(
        self, module: str, storage_function: str, params: list | None = None, block_hash: str | None = None
    ) -> list[tuple[Any, Any]]:
        return await self._read(
            lambda conn, block: _state.query_map(conn, block, module, storage_function, params or []), block_hash
        )

    async def query_batch(
        self, module: str, storage_function: str, param_sets: list[list], block_hash: str | None = None
    ) -> list[Any]:
        clock = self.clock
        return await self._read(
            lambda conn, block: [_state.query(conn, clock, block, module, storage_function, p) for p in param_sets],
            block_hash,
        )

    async def runtime_call(self, api: str, method: str, params: list, block_hash: str | None = None) -> Any:
        return await self._read(lambda conn, block: _state.runtime_call(conn, block, api, method, params), block_hash)

    async def constant(self, module: str, name: str) -> Any:
        if (module, name) == ("Aura", "SlotDuration"):
            return int(self.clock.block_time_s * 1000)
        raise ChainError(f"constant {module}.{name} is not available on the local chain")

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raise ChainError("the local chain stores decoded values; there is no SCALE data to decode")

    async def blocks(self, *, finalized: bool = False) -> AsyncIterator[dict]:
        """Yield each new head (starting with the current one), polling the wall-clock schedule."""
        last = self.clock.block() - 1
        while True:
            head = self.clock.block()
            for number in range(last + 1, head + 1):
                yield {"header": {"number": number, "hash": self.clock.block_hash(number)}}
            last = head
            clock = self.clock
            next_start = clock.genesis_time + head * clock.block_time_s
            await asyncio.sleep(max(0.01, next_start - clock.now()))

    async def events(self, block_hash: str | None = None) -> list[dict]:
        return []

    # Calls and fees ---------------------------------------------------------------------------

    async def compose(self, call: Any) -> Any:
        module, function, params = call  # the SDK's generated Call(module, function, params)
        return type(call)(module, function, dict(params)) if isinstance(call, tuple) else (module, function, params)

    async def estimate_fee(self, call: Any, keypair: Any) -> Balance:
        return Balance.from_rao(0)  # the local chain keeps no balances and charges no fees

    async def estimate_weight(self, call: Any, keypair: Any) -> dict:
        return {"ref_time": 0, "proof_size": 0}

    async def account_next_index(self, address: str) -> int:
        def read(conn: sqlite3.Connection, _block: int) -> int:
            row = conn.execute("SELECT nonce FROM accounts WHERE address = ?", (address,)).fetchone()
            return int(row[0]) if row else 0

        return await self._read(read, None)

    # Writes -----------------------------------------------------------------------------------

    async def submit(
        self,
        call: Any,
        keypair: Any,
        *,
        nonce: int | None = None,
        period: int | None = None,
        wait_for_inclusion: bool = True,
        wait_for_finalization: bool = True,
    ) -> ExtrinsicResult:
        """Sign ``call`` with ``keypair``, verify, validate and apply it in one transaction.

        The call is applied before returning whatever the wait flags say, so callers always
        learn the real outcome. Rejections write nothing and come back as failed results.
        """
        try:
            module, function, params = call
            call_json = encode_call(module, function, dict(params))
        except (TypeError, ValueError) as exc:
            return _failure("Call", f"Transaction call is not expected: {exc}")
        signer = str(keypair.ss58_address)
        if nonce is None:
            nonce = await self.account_next_index(signer)
        payload = signing_payload(self.clock.genesis_hash, nonce, call_json)
        loop = asyncio.get_running_loop()
        signature = await loop.run_in_executor(None, keypair.sign, payload)  # may unlock a keyfile
        if inspect.isawaitable(signature):
            signature = await signature
        signature = bytes(signature)
        if len(signature) == 65:
            signature = signature[1:]  # MultiSignature variant prefix
        crypto_type = int(getattr(keypair, "crypto_type", 1))
        try:
            return await self._run(
                self._apply, signer, crypto_type, nonce, payload, signature, module, function, dict(params), call_json
            )
        except sqlite3.Error as exc:
            return _failure("Unavailable", f"local chain write failed: {exc}")

    def _apply(
        self,
        signer: str,
        crypto_type: int,
        nonce: int,
        payload: bytes,
        signature: bytes,
        module: str,
        function: str,
        params: dict,
        call_json: str,
    ) -> ExtrinsicResult:
        try:
            verified = bool(sp_core.verify(payload, signature, signer, crypto_type))
        except Exception:  # malformed address or signature: the pool treats both as a bad proof
            verified = False
        if not verified:
            return _failure("BadProof", f"Transaction has a bad signature: it does not verify for {signer}")
        conn, clock = self._open_connection(), self.clock
        try:
            with _store.write_transaction(conn):
                block = clock.block()
                _epoch.run_due_epochs(conn, block)
                self._next_epoch_due = _epoch.next_epoch_due(conn)
                row = conn.execute("SELECT nonce FROM accounts WHERE address = ?", (signer,)).fetchone()
                expected = int(row[0]) if row else 0
                if nonce < expected:
                    raise _dispatch.Rejected("Stale", f"Transaction is outdated: nonce {nonce}, expected {expected}")
                if nonce > expected:
                    raise _dispatch.Rejected("Future", f"Transaction will be valid in the future: nonce {nonce}")
                events = _dispatch.apply_call(conn, block, signer, module, function, params)
                idx = conn.execute("SELECT COUNT(*) FROM extrinsics WHERE block = ?", (block,)).fetchone()[0]
                ext_hash = "0x" + hashlib.blake2b(payload + signature, digest_size=32).hexdigest()
                conn.execute(
                    "INSERT INTO extrinsics (block, idx, hash, signer, module, function, params) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (block, idx, ext_hash, signer, module, function, call_json),
                )
                conn.execute(
                    "INSERT INTO accounts (address, nonce) VALUES (?, 1) "
                    "ON CONFLICT (address) DO UPDATE SET nonce = nonce + 1",
                    (signer,),
                )
        except _dispatch.Rejected as rejected:
            return _failure(rejected.name, rejected.message)
        return ExtrinsicResult(
            success=True,
            message="Success",
            block_hash=clock.block_hash(block),
            extrinsic_id=f"{block}-{idx:04d}",
            fee=Balance.from_rao(0),
            events=[{**event, "extrinsic_idx": idx} for event in events],
        )

    # Unsupported on the local chain -----------------------------------------------------------

    async def mev_next_key(self) -> bytes | None:
        return None  # no MEV shield: shielded intents fail with the SDK's own message

    async def sign_extrinsic(self, call: Any, keypair: Any, *, nonce: int, period: int) -> tuple[bytes, str]:
        raise ChainError("the local chain does not build raw extrinsics (MEV-shielded submission is unsupported)")

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str) -> ExtrinsicResult | None:
        return None

    async def prepare(self, call: Any, *, address: str, **_options: Any) -> Any:
        raise ChainError("the local chain does not support out-of-process signing")

    async def submit_signature(self, unsigned: Any, signature: Any, **_options: Any) -> ExtrinsicResult:
        return _failure("Call", "Transaction call is not expected: out-of-process signing is unsupported locally")

    async def submit_signed(self, extrinsic: Any, keypair: Any, **_options: Any) -> ExtrinsicResult:
        return _failure("Call", "Transaction call is not expected: pre-signed extrinsics are unsupported locally")

    def multisig_account(self, signatories: list[str], threshold: int) -> Any:
        raise ChainError("the local chain does not support multisig accounts")

    async def submit_multisig(self, call: Any, keypair: Any, multisig_account: Any, **_options: Any) -> ExtrinsicResult:
        return _failure("Call", "Transaction call is not expected: multisig is unsupported locally")
