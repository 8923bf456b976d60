"""Authentication as one FastAPI dependency: verify the signed request, yield a typed :class:`Caller`.

:class:`Authenticator` tries, in order, each :class:`AuthScheme` whose headers are present
(btauth/1 now; legacy axon and Epistula schemes plug in beside it) and runs before any JSON
parsing, policy or model work. Tests replace it with ``app.dependency_overrides[authenticator]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from starlette.datastructures import Headers
from starlette.requests import Request

from gateway._body import read_body
from gateway._errors import GatewayError
from gateway.stores import NonceStore
from protocol.auth import AuthErrorCode, AuthFailure, has_btauth_headers, verify_btauth_signature
from protocol.auth.btauth import SCHEME as BTAUTH_SCHEME

__all__ = ["AuthScheme", "Authenticator", "BtAuthScheme", "Caller", "request_target"]

_STATUS_BY_CODE = {
    AuthErrorCode.MISSING: 401,
    AuthErrorCode.MALFORMED: 400,
    AuthErrorCode.WRONG_RECEIVER: 403,
    AuthErrorCode.STALE: 401,
    AuthErrorCode.BAD_SIGNATURE: 401,
    AuthErrorCode.REPLAYED: 401,
}


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified sender of a request."""

    hotkey_ss58: str
    scheme: str
    """Which scheme verified it, e.g. ``btauth/1``."""
    nonce: str
    """The scheme's nonce as sent (decimal nanoseconds for btauth/1)."""


class AuthScheme(Protocol):
    """One signing scheme the gateway accepts."""

    name: str

    def claims(self, headers: Headers) -> bool:
        """True when the request carries this scheme's headers (it then must verify or fail)."""
        ...

    async def authenticate(
        self, request: Request, body: bytes, *, before_recording: Callable[[Caller], None] | None = None
    ) -> Caller:
        """Verify the request over its raw ``body``; raise :class:`AuthFailure` when it does not.

        ``before_recording(caller)`` runs once the signature verified and before the nonce is
        checked and recorded: an exception it raises propagates and leaves no replay state.
        """
        ...


def request_target(request: Request) -> str:
    """The request target as received: raw path plus ``?query`` (what btauth/1 signs)."""
    scope = request.scope
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    target = path + b"?" + query if query else path
    return target.decode("latin-1")


class BtAuthScheme:
    """btauth/1, receiver-bound to this miner's hotkey, replay-checked against ``nonce_store``."""

    name = BTAUTH_SCHEME

    def __init__(
        self,
        hotkey_ss58: str,
        nonce_store: NonceStore,
        *,
        max_age_s: float,
        allowed_skew_s: float,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        if nonce_store.retention_s < max_age_s + allowed_skew_s:
            raise ValueError(
                f"nonce store retains {nonce_store.retention_s:g}s but the freshness window is "
                f"{max_age_s + allowed_skew_s:g}s; replays inside the gap would pass"
            )
        self._hotkey_ss58 = hotkey_ss58
        self._nonce_store = nonce_store
        self._max_age_s = max_age_s
        self._allowed_skew_s = allowed_skew_s
        self._clock_ns = clock_ns

    def claims(self, headers: Headers) -> bool:
        return has_btauth_headers(headers)

    async def authenticate(
        self, request: Request, body: bytes, *, before_recording: Callable[[Caller], None] | None = None
    ) -> Caller:
        sender = verify_btauth_signature(
            request.headers,
            body,
            method=request.method,
            target=request_target(request),
            receiver_ss58=self._hotkey_ss58,
            max_age_s=self._max_age_s,
            allowed_skew_s=self._allowed_skew_s,
            now_ns=self._clock_ns() if self._clock_ns is not None else None,
        )
        caller = Caller(hotkey_ss58=sender.hotkey_ss58, scheme=self.name, nonce=str(sender.nonce_ns))
        if before_recording is not None:
            before_recording(caller)
        if not await self._nonce_store.check_and_store(sender.hotkey_ss58, sender.nonce_ns):
            raise AuthFailure(AuthErrorCode.REPLAYED, "this nonce was already accepted from this hotkey")
        return caller


class Authenticator:
    """The FastAPI dependency: pick the scheme, read the body (size- and time-capped), verify it.

    The first scheme that claims the request (by its headers) decides; a request no scheme
    claims gets 401 ``auth_missing`` naming the accepted schemes, without its body being read.
    Failures become JSON 4xx answers. The verified caller is also left on
    ``request.state.caller`` (response signing binds answers to it). ``check_identity(hotkey)``
    (the policy's identity check) runs between signature and nonce, so a hotkey the policy
    refuses gets its 403 without leaving replay state behind.
    """

    def __init__(
        self,
        schemes: Sequence[AuthScheme],
        *,
        max_body_bytes: int,
        body_timeout_s: float,
        check_identity: Callable[[str], None] | None = None,
    ) -> None:
        if not schemes:
            raise ValueError("an Authenticator needs at least one scheme")
        self._schemes = tuple(schemes)
        self._max_body_bytes = max_body_bytes
        self._body_timeout_s = body_timeout_s
        self._check_identity = check_identity

    async def __call__(self, request: Request) -> Caller:
        scheme = next((s for s in self._schemes if s.claims(request.headers)), None)
        if scheme is None:  # rejected on headers alone, before reading any body
            names = ", ".join(s.name for s in self._schemes)
            raise GatewayError(401, AuthErrorCode.MISSING.value, f"request is not signed; accepted schemes: {names}")
        body = await read_body(request, self._max_body_bytes, timeout_s=self._body_timeout_s)
        check_identity = self._check_identity

        def admit_identity(caller: Caller) -> None:
            request.state.caller = caller  # the signature verified: answers from here on are bound to it
            if check_identity is not None:
                check_identity(caller.hotkey_ss58)

        try:
            caller = await scheme.authenticate(request, body, before_recording=admit_identity)
        except AuthFailure as failure:
            request.state.caller = None  # never bind an answer to a request that failed verification
            raise GatewayError(_STATUS_BY_CODE[failure.code], failure.code.value, failure.message) from None
        request.state.caller = caller
        return caller
