"""Why a signed request was rejected: one error type shared by every signing scheme.

Each scheme adapter (btauth/1 here; legacy axon and Epistula beside it) translates its library's
exceptions into :class:`AuthFailure` once, so the gateway maps one enum to HTTP statuses whatever
scheme the caller used.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.errors import AxongateError

__all__ = ["AuthErrorCode", "AuthFailure"]


class AuthErrorCode(StrEnum):
    """Stable reasons for rejecting a signed request (the value is the wire ``error`` code)."""

    MISSING = "auth_missing"
    """No supported scheme's headers are present."""
    MALFORMED = "auth_malformed"
    """A scheme's header is missing or unparseable (bad nonce, non-hex signature, bad address)."""
    WRONG_RECEIVER = "auth_wrong_receiver"
    """The request was signed for another receiving hotkey, or for none."""
    STALE = "auth_stale"
    """The nonce is outside the freshness window."""
    BAD_SIGNATURE = "auth_bad_signature"
    """The signature does not verify against the claimed hotkey over the bytes received."""
    REPLAYED = "auth_replayed"
    """This (hotkey, nonce) was already accepted."""


class AuthFailure(AxongateError):
    """A signed request failed verification; ``code`` says why, the message is safe to return.

    Messages never echo signatures or payloads, so they can be sent back to the unauthenticated
    caller as the error detail.
    """

    def __init__(self, code: AuthErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
