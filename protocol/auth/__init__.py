"""Request signing schemes: sign on the client, verify on the gateway.

btauth/1 (bittensor 11) lives in :mod:`protocol.auth.btauth`; every scheme reports a rejected
request as :class:`AuthFailure` with an :class:`AuthErrorCode`.
"""

from protocol.auth.btauth import BtAuth, BtAuthSender, has_btauth_headers, verify_btauth_signature
from protocol.auth.errors import AuthErrorCode, AuthFailure

__all__ = [
    "AuthErrorCode",
    "AuthFailure",
    "BtAuth",
    "BtAuthSender",
    "has_btauth_headers",
    "verify_btauth_signature",
]
