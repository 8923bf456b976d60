"""btauth/1: bittensor 11's hotkey-signed HTTP requests, as an ``httpx.Auth`` and a verifier.

Adapter over :mod:`bittensor.http_auth` (the normative implementation): signing and checking are
delegated to it, and its exceptions are translated here, once, into :class:`AuthFailure`.

Signing uses the hotkey ``Keypair`` itself, never a ``Wallet``: the SDK re-reads a wallet's keyfile
on every signature (about 20x slower). Every request is receiver-bound to the miner's hotkey, so a
signed request captured by one miner cannot be replayed against another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from bittensor import http_auth

from protocol.auth.errors import AuthErrorCode, AuthFailure

__all__ = [
    "BTAUTH_HEADERS",
    "SCHEME",
    "BtAuth",
    "BtAuthSender",
    "has_btauth_headers",
    "verify_btauth_signature",
]

SCHEME = http_auth.PROTOCOL
"""Wire name of the scheme: ``btauth/1``."""

BTAUTH_HEADERS = (
    http_auth.HEADER_VERSION,
    http_auth.HEADER_HOTKEY,
    http_auth.HEADER_NONCE,
    http_auth.HEADER_SIGNATURE,
    http_auth.HEADER_RECEIVER,
    http_auth.HEADER_CRYPTO,
)
"""Headers the scheme reads; a CORS or proxy layer must pass them through."""

_ERROR_CODES: dict[type[http_auth.AuthError], AuthErrorCode] = {
    http_auth.MalformedAuth: AuthErrorCode.MALFORMED,
    http_auth.WrongReceiver: AuthErrorCode.WRONG_RECEIVER,
    http_auth.StaleRequest: AuthErrorCode.STALE,
    http_auth.BadSignature: AuthErrorCode.BAD_SIGNATURE,
    http_auth.ReplayedRequest: AuthErrorCode.REPLAYED,
}


class BtAuth(httpx.Auth):
    """Sign each outgoing request with btauth/1, bound to ``receiver_ss58``.

    ``requires_request_body = True`` makes httpx hand over the final body bytes, so the signed
    sha256 covers exactly what goes on the wire; the signed target is the raw path plus query
    as sent. A retried request is signed again with a fresh nonce.

    ``keypair`` is a bittensor hotkey ``Keypair`` (``wallet.hotkey``). ``clock_ns`` is injectable
    so tests can pin nonces.
    """

    requires_request_body = True

    def __init__(self, keypair: Any, receiver_ss58: str, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._keypair = keypair
        self._receiver_ss58 = receiver_ss58
        self._clock_ns = clock_ns

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = http_auth.sign(
            self._keypair,
            method=request.method,
            path=request.url.raw_path.decode("ascii"),
            body=request.content,
            receiver_ss58=self._receiver_ss58,
            nonce_ns=self._clock_ns(),
        )
        request.headers.update(headers)
        yield request


@dataclass(frozen=True, slots=True)
class BtAuthSender:
    """Who signed a request whose btauth/1 signature verified (replay not yet checked)."""

    hotkey_ss58: str
    nonce_ns: int
    crypto_type: int
    """1 = sr25519, 0 = ed25519."""


def has_btauth_headers(headers: Mapping[str, str]) -> bool:
    """True when the request claims btauth/1 (carries its signature header); case-insensitive."""
    wanted = http_auth.HEADER_SIGNATURE.lower()
    return any(key.lower() == wanted for key in headers)


class _AcceptEveryNonce:
    """Stand-in store: replay is checked by the caller against its own (possibly shared) store."""

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        return True


_ACCEPT_EVERY_NONCE = _AcceptEveryNonce()


def verify_btauth_signature(
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    target: str,
    receiver_ss58: str,
    max_age_s: float = http_auth.DEFAULT_MAX_AGE,
    allowed_skew_s: float = http_auth.DEFAULT_ALLOWED_SKEW,
    now_ns: int | None = None,
) -> BtAuthSender:
    """Check header shape, receiver binding, freshness and signature; return the sender.

    ``body`` is the raw bytes received, before any parsing; ``target`` is the request path plus
    ``?query`` exactly as received. Replay is NOT checked here: the caller must then record
    ``(hotkey_ss58, nonce_ns)`` in a nonce store that retains entries for at least
    ``max_age_s + allowed_skew_s`` and reject a pair seen before (the gateway's store may be
    shared between processes and is async, which ``http_auth.verify`` cannot await).

    Raises :class:`AuthFailure` with the reason; never raises a bittensor exception.
    Costs about 130 µs of CPU (sr25519), cheap enough to run on the event loop.
    """
    try:
        caller = http_auth.verify(
            headers,
            body,
            method=method,
            path=target,
            self_hotkey_ss58=receiver_ss58,
            max_age=max_age_s,
            allowed_skew=allowed_skew_s,
            require_receiver=True,
            nonce_store=_ACCEPT_EVERY_NONCE,
            now_ns=now_ns,
        )
    except http_auth.AuthError as exc:
        code = _ERROR_CODES.get(type(exc), AuthErrorCode.MALFORMED)
        raise AuthFailure(code, str(exc)) from None
    return BtAuthSender(hotkey_ss58=caller.hotkey_ss58, nonce_ns=caller.nonce_ns, crypto_type=caller.crypto_type)
