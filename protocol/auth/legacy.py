"""The legacy axon signing scheme: what a bittensor <= 10 ``Dendrite`` sends, verified without it.

Wire format (normative, as the stock 10.x ``Dendrite`` produces it):

- ``computed_body_hash`` = ``sha3_256("".join(sha3_256(str(v)).hexdigest() for v in inputs))``
  where ``inputs`` are the synapse's ``required_hash_fields`` values from ``model_dump()`` and
  ``str`` is Python's ``str`` (dict/list/float/bool reprs; a JSON encoding does not reproduce it).
- the signed message is ``f"{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{computed_body_hash}"``
  as UTF-8, signed with the dendrite's sr25519 hotkey; headers ``bt_header_dendrite_*``.

Verification here is stricter than the stock ``Axon``: the signature is checked against this
miner's own hotkey (a request signed for another axon fails); the nonce must lie in a two-sided
freshness window whatever the unsigned ``timeout`` and ``bt_header_dendrite_version`` headers say;
and nonces must strictly increase per ``hotkey:uuid`` (replay protection), tracked in a
:class:`MonotonicNonceStore` whose entries only need to outlive the window. The store is written
only after the signature verifies, so unauthenticated traffic cannot poison it.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bittensor_core import CRYPTO_SR25519, Keypair
from bittensor_core import verify as sr25519_verify

from protocol.auth.errors import AuthErrorCode, AuthFailure

__all__ = [
    "DEFAULT_ALLOWED_SKEW_S",
    "DEFAULT_MAX_AGE_S",
    "EMPTY_BODY_HASH",
    "HEADER_AXON_HOTKEY",
    "HEADER_BODY_HASH",
    "HEADER_HOTKEY",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_UUID",
    "HEADER_VERSION",
    "LEGACY_HEADER_PREFIX",
    "InMemoryMonotonicNonceStore",
    "LegacyAuthHeaders",
    "LegacyCaller",
    "MonotonicNonceStore",
    "body_hash",
    "parse_headers",
    "sign_headers",
    "signature_message",
    "verify",
]

LEGACY_HEADER_PREFIX = "bt_header_dendrite_"
"""Any header with this prefix marks a request as legacy-signed."""
HEADER_HOTKEY = "bt_header_dendrite_hotkey"
HEADER_NONCE = "bt_header_dendrite_nonce"
HEADER_UUID = "bt_header_dendrite_uuid"
HEADER_SIGNATURE = "bt_header_dendrite_signature"
HEADER_VERSION = "bt_header_dendrite_version"
HEADER_AXON_HOTKEY = "bt_header_axon_hotkey"
HEADER_BODY_HASH = "computed_body_hash"

DEFAULT_MAX_AGE_S = 16.0
"""Oldest nonce accepted: the stock axon's window for its default 12 s timeout (4 s + timeout)."""
DEFAULT_ALLOWED_SKEW_S = 4.0
"""Furthest a nonce may lie in the future (clock drift); the stock axon has no bound at all."""

EMPTY_BODY_HASH = hashlib.sha3_256(b"").hexdigest()
"""The hash of a synapse with no ``required_hash_fields`` (the stock default)."""

_MAX_UUID_CHARS = 64


@dataclass(frozen=True)
class LegacyAuthHeaders:
    """The authentication-relevant headers of one legacy request, parsed but not yet verified."""

    dendrite_hotkey: str
    nonce_ns: int
    uuid: str
    signature: bytes
    computed_body_hash: str
    axon_hotkey: str | None
    """Unsigned: where the dendrite thinks it is sending; the signature binds the real target."""
    version: int | None
    """Unsigned dendrite version; informative only (never widens the window)."""


@dataclass(frozen=True)
class LegacyCaller:
    """The authenticated sender of a verified legacy request."""

    hotkey_ss58: str
    nonce_ns: int
    uuid: str
    version: int | None


class MonotonicNonceStore(Protocol):
    """Replay state for legacy nonces: the highest nonce accepted per ``hotkey:uuid`` key.

    ``advance`` atomically records ``nonce_ns`` for ``key`` if it is greater than the stored
    one (or none is stored) and returns True; otherwise it changes nothing and returns False.
    An entry may be forgotten ``ttl_s`` after it was written: by then any nonce it guards is
    outside the freshness window. A Redis implementation is one Lua compare-and-set with ``PX``.
    """

    async def advance(self, key: str, nonce_ns: int, ttl_s: float) -> bool: ...


class InMemoryMonotonicNonceStore:
    """Per-process :class:`MonotonicNonceStore`: a dict pruned of expired entries as it grows."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._next_prune = 1024

    async def advance(self, key: str, nonce_ns: int, ttl_s: float) -> bool:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] > now and nonce_ns <= entry[0]:
                return False
            self._entries[key] = (nonce_ns, now + ttl_s)
            if len(self._entries) >= self._next_prune:
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
                self._next_prune = max(1024, 2 * len(self._entries))
            return True

    def __len__(self) -> int:
        return len(self._entries)


def body_hash(values: Mapping[str, object], fields: Iterable[str]) -> str:
    """``computed_body_hash`` of ``values`` (a synapse's ``model_dump()``) over ``fields``.

    Uses Python's ``str`` on each value, exactly as the stock ``Synapse.body_hash`` does; pass
    values dumped by a pydantic model whose fields (and nested field order) mirror the synapse.
    """
    digests = "".join(_field_digest(str(values[field])) for field in fields)
    return hashlib.sha3_256(digests.encode()).hexdigest()


_CACHED_FIELD_CHARS = 64


def _field_digest(text: str) -> str:
    """sha3-256 hex of one field's ``str``; short values (sampling parameters) repeat, so they are cached."""
    if len(text) <= _CACHED_FIELD_CHARS:
        return _short_field_digest(text)
    return hashlib.sha3_256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _short_field_digest(text: str) -> str:
    return hashlib.sha3_256(text.encode()).hexdigest()


def signature_message(*, nonce_ns: int, dendrite_hotkey: str, axon_hotkey: str, uuid: str, body_hash: str) -> bytes:
    """The exact bytes a legacy dendrite signs."""
    return f"{nonce_ns}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}".encode()


def parse_headers(headers: Mapping[str, str]) -> LegacyAuthHeaders:
    """Parse the legacy auth headers (case-insensitively); raises ``AuthFailure(MALFORMED)``."""
    lowered = {key.lower(): value for key, value in headers.items()}

    def required(name: str) -> str:
        value = lowered.get(name)
        if not value:
            raise AuthFailure(AuthErrorCode.MALFORMED, f"missing {name} header")
        return value

    hotkey = required(HEADER_HOTKEY)
    raw_nonce = required(HEADER_NONCE)
    if not (raw_nonce.isascii() and raw_nonce.isdigit()) or len(raw_nonce) > 20:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_NONCE} must be a decimal nanosecond timestamp")
    uuid = required(HEADER_UUID)
    if len(uuid) > _MAX_UUID_CHARS or "." in uuid:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_UUID} must be a uuid")
    raw_signature = required(HEADER_SIGNATURE)
    try:
        signature = bytes.fromhex(raw_signature.removeprefix("0x"))
    except ValueError:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_SIGNATURE} is not hex") from None
    computed = required(HEADER_BODY_HASH)
    raw_version = lowered.get(HEADER_VERSION)
    valid_version = raw_version is not None and raw_version.isascii() and raw_version.isdigit()
    version = int(raw_version) if valid_version and len(raw_version) <= 12 else None
    return LegacyAuthHeaders(
        dendrite_hotkey=hotkey,
        nonce_ns=int(raw_nonce),
        uuid=uuid,
        signature=signature,
        computed_body_hash=computed,
        axon_hotkey=lowered.get(HEADER_AXON_HOTKEY),
        version=version,
    )


async def verify(
    headers: LegacyAuthHeaders,
    *,
    received_body_hash: str,
    self_hotkey_ss58: str,
    nonce_store: MonotonicNonceStore,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    allowed_skew_s: float = DEFAULT_ALLOWED_SKEW_S,
    now_ns: int | None = None,
    before_recording: Callable[[str], None] | None = None,
) -> LegacyCaller:
    """Authenticate a legacy request (``headers`` from :func:`parse_headers`); return the caller.

    ``received_body_hash`` is :func:`body_hash` recomputed from the body as received.

    Raises :class:`AuthFailure`; checks, in order: the target axon
    named in the headers (``WRONG_RECEIVER``), freshness (``STALE``), the body hash and then the
    signature over this miner's own hotkey (``BAD_SIGNATURE``), and last the monotonic nonce
    (``REPLAYED``), which is recorded only once everything else passed.
    ``before_recording(hotkey)`` runs once the signature verified and before the nonce is
    checked and recorded: an exception it raises (a policy refusing the hotkey) propagates and
    leaves no replay state behind.
    """
    parsed = headers
    if parsed.axon_hotkey is not None and parsed.axon_hotkey != self_hotkey_ss58:
        raise AuthFailure(AuthErrorCode.WRONG_RECEIVER, "request was signed for a different axon hotkey")
    now = time.time_ns() if now_ns is None else now_ns
    if now - parsed.nonce_ns > max_age_s * 1e9:
        raise AuthFailure(AuthErrorCode.STALE, f"nonce is older than the {max_age_s:g}s freshness window")
    if parsed.nonce_ns - now > allowed_skew_s * 1e9:
        raise AuthFailure(AuthErrorCode.STALE, f"nonce is more than {allowed_skew_s:g}s in the future")
    if parsed.computed_body_hash != received_body_hash:
        raise AuthFailure(AuthErrorCode.BAD_SIGNATURE, "body does not match the signed computed_body_hash")
    message = signature_message(
        nonce_ns=parsed.nonce_ns,
        dendrite_hotkey=parsed.dendrite_hotkey,
        axon_hotkey=self_hotkey_ss58,
        uuid=parsed.uuid,
        body_hash=parsed.computed_body_hash,
    )
    try:
        valid = sr25519_verify(message, parsed.signature, parsed.dendrite_hotkey, CRYPTO_SR25519)
    except ValueError:
        raise AuthFailure(AuthErrorCode.MALFORMED, "invalid dendrite hotkey address or signature encoding") from None
    if not valid:
        raise AuthFailure(AuthErrorCode.BAD_SIGNATURE, "signature does not verify for this axon and dendrite hotkey")
    if before_recording is not None:
        before_recording(parsed.dendrite_hotkey)
    ttl_s = max_age_s + allowed_skew_s + 1.0
    if not await nonce_store.advance(f"{parsed.dendrite_hotkey}:{parsed.uuid}", parsed.nonce_ns, ttl_s):
        raise AuthFailure(AuthErrorCode.REPLAYED, "nonce is not newer than the last one accepted from this dendrite")
    return LegacyCaller(
        hotkey_ss58=parsed.dendrite_hotkey, nonce_ns=parsed.nonce_ns, uuid=parsed.uuid, version=parsed.version
    )


def sign_headers(
    keypair: Keypair,
    *,
    synapse_name: str,
    axon_hotkey: str,
    computed_body_hash: str,
    uuid: str,
    nonce_ns: int | None = None,
    timeout_s: float = 12.0,
    version: int = 10_005_000,
) -> dict[str, str]:
    """Headers a legacy dendrite would send; for tests, benchmarks and non-v10 senders.

    ``keypair`` must be sr25519 (what v10 axons verify). ``nonce_ns`` defaults to now.
    """
    nonce = time.time_ns() if nonce_ns is None else nonce_ns
    message = signature_message(
        nonce_ns=nonce,
        dendrite_hotkey=keypair.ss58_address,
        axon_hotkey=axon_hotkey,
        uuid=uuid,
        body_hash=computed_body_hash,
    )
    return {
        "name": synapse_name,
        "timeout": str(float(timeout_s)),
        HEADER_AXON_HOTKEY: axon_hotkey,
        HEADER_VERSION: str(version),
        HEADER_NONCE: str(nonce),
        HEADER_UUID: uuid,
        HEADER_HOTKEY: keypair.ss58_address,
        HEADER_SIGNATURE: "0x" + bytes(keypair.sign(message)).hex(),
        HEADER_BODY_HASH: computed_body_hash,
    }
