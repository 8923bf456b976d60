"""Epistula v2: the hotkey-signed request headers several inference subnets' validators send.

Wire format (as Targon's and Apex's validators produce it, kept byte-compatible):

- headers ``Epistula-Version: 2``, ``Epistula-Timestamp`` (Unix milliseconds), ``Epistula-Uuid``
  (a uuid4), ``Epistula-Signed-By`` (sender ss58), ``Epistula-Signed-For`` (receiver ss58) and
  ``Epistula-Request-Signature`` (``0x`` + 64-byte sr25519 signature in hex);
- the signed message is ``f"{sha256(body).hexdigest()}.{uuid}.{timestamp}.{signed_for}"`` as
  UTF-8, over the raw body bytes sent.

Verification here is stricter than those subnets' miners: the signature is checked first (an
unauthenticated sender learns nothing about windows or receivers), then the receiver must be this
miner, then the timestamp must lie in a two-sided window (too old *and* too far ahead are both
rejected), and the caller must record ``(signed_by, uuid)`` in a replay cache that outlives the
window. The ``Epistula-Secret-Signature-*`` headers some senders add sign a predictable
``"{interval}.{receiver}"`` string; they authenticate nothing about the request, so they are
neither sent nor read.
"""

from __future__ import annotations

import hashlib
import time
import uuid as uuidlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from bittensor_core import CRYPTO_SR25519
from bittensor_core import verify as sr25519_verify

from protocol.auth.errors import AuthErrorCode, AuthFailure

__all__ = [
    "DEFAULT_ALLOWED_SKEW_S",
    "DEFAULT_MAX_AGE_S",
    "EPISTULA_HEADERS",
    "EPISTULA_HEADER_PREFIX",
    "EPISTULA_VERSION",
    "HEADER_SIGNATURE",
    "HEADER_SIGNED_BY",
    "HEADER_SIGNED_FOR",
    "HEADER_TIMESTAMP",
    "HEADER_UUID",
    "HEADER_VERSION",
    "SCHEME",
    "EpistulaAuth",
    "EpistulaSender",
    "has_epistula_headers",
    "sign_epistula",
    "signature_message",
    "verify_epistula_signature",
]

SCHEME = "epistula/2"
"""``Caller.scheme`` of requests verified with Epistula v2."""
EPISTULA_VERSION = "2"
HEADER_VERSION = "Epistula-Version"
HEADER_TIMESTAMP = "Epistula-Timestamp"
HEADER_UUID = "Epistula-Uuid"
HEADER_SIGNED_BY = "Epistula-Signed-By"
HEADER_SIGNED_FOR = "Epistula-Signed-For"
HEADER_SIGNATURE = "Epistula-Request-Signature"
EPISTULA_HEADERS = (
    HEADER_VERSION,
    HEADER_TIMESTAMP,
    HEADER_UUID,
    HEADER_SIGNED_BY,
    HEADER_SIGNED_FOR,
    HEADER_SIGNATURE,
)
"""Headers the scheme reads; a CORS or proxy layer must pass them through."""
EPISTULA_HEADER_PREFIX = "epistula-"
"""Any header with this prefix (case-insensitive) marks a request as Epistula-signed."""

DEFAULT_MAX_AGE_S = 10.0
"""Oldest timestamp accepted (Targon's miners allow 8 s; the gateway passes its own window)."""
DEFAULT_ALLOWED_SKEW_S = 2.0
"""Furthest a timestamp may lie ahead of our clock; the subnets above have no bound at all."""

_MAX_TIMESTAMP_DIGITS = 16
_SIGNATURE_BYTES = 64


@dataclass(frozen=True, slots=True)
class EpistulaSender:
    """Who signed a request whose Epistula signature, receiver and freshness checked out.

    Replay is not yet checked: record ``(hotkey_ss58, uuid)`` in a store that outlives the window.
    """

    hotkey_ss58: str
    uuid: str
    """The uuid exactly as sent (the replay-cache key, with the hotkey)."""
    timestamp_ms: int


def signature_message(*, body: bytes, uuid: str, timestamp_ms: int, signed_for: str) -> bytes:
    """The exact bytes an Epistula v2 sender signs for ``body``."""
    return f"{hashlib.sha256(body).hexdigest()}.{uuid}.{timestamp_ms}.{signed_for}".encode()


def sign_epistula(
    keypair: Any,
    body: bytes,
    *,
    signed_for: str,
    timestamp_ms: int | None = None,
    uuid: str | None = None,
) -> dict[str, str]:
    """Epistula v2 headers for ``body`` signed by ``keypair`` (an sr25519 hotkey ``Keypair``).

    ``timestamp_ms`` defaults to now and ``uuid`` to a fresh uuid4; both are parameters so tests
    can pin golden vectors.
    """
    timestamp = round(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    request_uuid = str(uuidlib.uuid4()) if uuid is None else uuid
    message = signature_message(body=body, uuid=request_uuid, timestamp_ms=timestamp, signed_for=signed_for)
    return {
        HEADER_VERSION: EPISTULA_VERSION,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_UUID: request_uuid,
        HEADER_SIGNED_BY: keypair.ss58_address,
        HEADER_SIGNED_FOR: signed_for,
        HEADER_SIGNATURE: "0x" + bytes(keypair.sign(message)).hex(),
    }


class EpistulaAuth(httpx.Auth):
    """Sign each outgoing request with Epistula v2, addressed to ``receiver_ss58``.

    ``requires_request_body = True`` makes httpx hand over the final body bytes, so the signed
    sha256 covers exactly what goes on the wire. A retried request gets a fresh uuid and timestamp.
    ``clock_ms`` is injectable so tests can pin timestamps.
    """

    requires_request_body = True

    def __init__(
        self, keypair: Any, receiver_ss58: str, *, clock_ms: Callable[[], int] = lambda: round(time.time() * 1000)
    ) -> None:
        self._keypair = keypair
        self._receiver_ss58 = receiver_ss58
        self._clock_ms = clock_ms

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = sign_epistula(
            self._keypair, request.content, signed_for=self._receiver_ss58, timestamp_ms=self._clock_ms()
        )
        request.headers.update(headers)
        yield request


def has_epistula_headers(headers: Mapping[str, str]) -> bool:
    """True when any ``Epistula-*`` header is present (the request then must verify as Epistula)."""
    return any(key.lower().startswith(EPISTULA_HEADER_PREFIX) for key in headers)


@dataclass(frozen=True, slots=True)
class _Parsed:
    version: str
    timestamp_ms: int
    uuid: str
    signed_by: str
    signed_for: str
    signature: bytes


def _parse(headers: Mapping[str, str]) -> _Parsed:
    lowered = {key.lower(): value for key, value in headers.items()}

    def required(name: str) -> str:
        value = lowered.get(name.lower())
        if not value:
            raise AuthFailure(AuthErrorCode.MALFORMED, f"missing {name} header")
        return value

    version = required(HEADER_VERSION)
    if version.strip() != EPISTULA_VERSION:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"unsupported {HEADER_VERSION} (only {EPISTULA_VERSION} is served)")
    raw_timestamp = required(HEADER_TIMESTAMP)
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_TIMESTAMP} must be Unix milliseconds (decimal digits)")
    request_uuid = required(HEADER_UUID)
    try:
        canonical = len(request_uuid) == 36 and str(uuidlib.UUID(request_uuid)) == request_uuid.lower()
    except ValueError:
        canonical = False
    if not canonical:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_UUID} must be a uuid in 8-4-4-4-12 hex form")
    raw_signature = required(HEADER_SIGNATURE)
    try:
        signature = bytes.fromhex(raw_signature.removeprefix("0x"))
    except ValueError:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_SIGNATURE} is not hex") from None
    if len(signature) != _SIGNATURE_BYTES:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_SIGNATURE} must be a 64-byte sr25519 signature")
    return _Parsed(
        version=version,
        timestamp_ms=int(raw_timestamp),
        uuid=request_uuid,
        signed_by=required(HEADER_SIGNED_BY),
        signed_for=lowered.get(HEADER_SIGNED_FOR.lower(), ""),
        signature=signature,
    )


def _signature_valid(message: bytes, signature: bytes, signer_ss58: str) -> bool:
    """sr25519 over the raw message, or over ``<Bytes>message</Bytes>`` as browser wallets sign."""
    try:
        if sr25519_verify(message, signature, signer_ss58, CRYPTO_SR25519):
            return True
        return bool(sr25519_verify(b"<Bytes>" + message + b"</Bytes>", signature, signer_ss58, CRYPTO_SR25519))
    except ValueError:
        raise AuthFailure(AuthErrorCode.MALFORMED, f"{HEADER_SIGNED_BY} is not a valid ss58 address") from None


def verify_epistula_signature(
    headers: Mapping[str, str],
    body: bytes,
    *,
    receiver_ss58: str,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    allowed_skew_s: float = DEFAULT_ALLOWED_SKEW_S,
    now_ms: int | None = None,
) -> EpistulaSender:
    """Verify an Epistula v2 request over its raw ``body``; return the sender.

    Order: header shape (``MALFORMED``), signature (``BAD_SIGNATURE``), ``Epistula-Signed-For``
    equal to ``receiver_ss58`` (``WRONG_RECEIVER``), timestamp no older than ``max_age_s`` and no
    more than ``allowed_skew_s`` ahead of ``now_ms`` (``STALE``). Replay is NOT checked here: the
    caller records ``(hotkey_ss58, uuid)`` in a store retaining entries for at least
    ``max_age_s + allowed_skew_s`` and rejects a pair seen before.

    Raises :class:`AuthFailure`; costs one or two sr25519 verifications (about 40 µs each).
    """
    parsed = _parse(headers)
    message = signature_message(
        body=body, uuid=parsed.uuid, timestamp_ms=parsed.timestamp_ms, signed_for=parsed.signed_for
    )
    if not _signature_valid(message, parsed.signature, parsed.signed_by):
        raise AuthFailure(AuthErrorCode.BAD_SIGNATURE, "signature does not verify for the body and Epistula headers")
    if parsed.signed_for != receiver_ss58:
        raise AuthFailure(AuthErrorCode.WRONG_RECEIVER, f"request is not signed for this miner ({HEADER_SIGNED_FOR})")
    now = round(time.time() * 1000) if now_ms is None else now_ms
    if now - parsed.timestamp_ms > max_age_s * 1000:
        raise AuthFailure(AuthErrorCode.STALE, f"timestamp is older than the {max_age_s:g}s freshness window")
    if parsed.timestamp_ms - now > allowed_skew_s * 1000:
        raise AuthFailure(AuthErrorCode.STALE, f"timestamp is more than {allowed_skew_s:g}s in the future")
    return EpistulaSender(hotkey_ss58=parsed.signed_by, uuid=parsed.uuid, timestamp_ms=parsed.timestamp_ms)
