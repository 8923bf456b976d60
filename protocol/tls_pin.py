"""TLS to a miner, pinned to the public key the miner published on chain (``ServeAxonTls``).

Miners serve self-signed certificates: no CA vouches for an IP address on a subnet. What the
chain does vouch for is the miner's hotkey, and with ``ServeAxonTls`` the hotkey publishes a
*certificate* field: one algorithm byte followed by a raw public key (not X.509). A client
trusts a TLS connection exactly when the server's certificate carries that key.

:class:`PinningTransport` is an httpx transport that does this per request: a request whose
``extensions`` hold :data:`PIN_EXTENSION` is sent over a connection whose TLS certificate key
matched the pin *right after the handshake*, before any request byte is written (checked again
on every response, so a pooled connection is never reused for another pin). A mismatch raises
:class:`CertificateMismatch`. Requests without a pin use ordinary CA verification.

Key encoding (:func:`certificate_bytes`): ``0x01`` + the 32-byte Ed25519 key, or ``0x02`` + the
33-byte compressed ECDSA P-256 point.
"""

from __future__ import annotations

import functools
import hmac
import ssl
from typing import Any

import httpx

__all__ = [
    "ALGORITHM_ECDSA_P256",
    "ALGORITHM_ED25519",
    "PIN_EXTENSION",
    "CertificateMismatch",
    "PinningTransport",
    "certificate_bytes",
    "certificate_bytes_of_der",
]

ALGORITHM_ED25519 = 0x01
ALGORITHM_ECDSA_P256 = 0x02
PIN_EXTENSION = "axongate.tls_pin"
"""httpx request extension: the on-chain certificate bytes the server's TLS key must match."""
_PEER_CACHE_SIZE = 1024


class CertificateMismatch(httpx.ConnectError):
    """The server's TLS certificate key is not the one published on chain for the miner's hotkey."""


def certificate_bytes(public_key: Any) -> bytes:
    """The on-chain certificate field for a ``cryptography`` public key (Ed25519 or P-256)."""
    # Imported here so the client stays importable where TLS is never used.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return bytes([ALGORITHM_ED25519]) + raw
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return bytes([ALGORITHM_ECDSA_P256]) + point
    raise ValueError(f"unsupported TLS key type {type(public_key).__name__}: use Ed25519 or ECDSA P-256")


@functools.lru_cache(maxsize=_PEER_CACHE_SIZE)
def certificate_bytes_of_der(der: bytes) -> bytes | None:
    """The on-chain form of a DER certificate's public key; None when unparsable or unsupported."""
    from cryptography import x509

    try:
        return certificate_bytes(x509.load_der_x509_certificate(der).public_key())
    except ValueError:
        return None


def _no_ca_context() -> ssl.SSLContext:
    """TLS without CA or hostname checks: the pin replaces both (see the module docstring)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _peer_matches(network_stream: Any, pin: bytes) -> bool:
    ssl_object = network_stream.get_extra_info("ssl_object") if network_stream is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    actual = certificate_bytes_of_der(der) if der else None
    return actual is not None and hmac.compare_digest(actual, pin)


class PinningTransport(httpx.AsyncBaseTransport):
    """Route pinned requests over a no-CA TLS pool that checks the pin; others over ``verify``.

    ``verify`` and ``limits`` are those of ``httpx.AsyncHTTPTransport`` (each pool gets ``limits``).
    """

    def __init__(self, *, verify: Any = True, limits: httpx.Limits | None = None) -> None:
        self._limits = limits or httpx.Limits()
        self._plain = httpx.AsyncHTTPTransport(verify=verify, limits=self._limits, trust_env=False)
        self._pinned: httpx.AsyncHTTPTransport | None = None  # built on the first pinned request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pin = request.extensions.get(PIN_EXTENSION)
        if pin is None:
            return await self._plain.handle_async_request(request)
        if request.url.scheme != "https":
            raise CertificateMismatch(f"a pinned request must use https, not {request.url.scheme}", request=request)
        outer_trace = request.extensions.get("trace")

        async def check_handshake(event: str, info: dict[str, Any]) -> None:
            if event == "connection.start_tls.complete":
                stream = info.get("return_value")
                if not _peer_matches(stream, pin):
                    if stream is not None:
                        await stream.aclose()
                    raise CertificateMismatch(_MISMATCH, request=request)
            if outer_trace is not None:
                await outer_trace(event, info)

        request.extensions = {**request.extensions, "trace": check_handshake}
        if self._pinned is None:
            self._pinned = httpx.AsyncHTTPTransport(verify=_no_ca_context(), limits=self._limits, trust_env=False)
        response = await self._pinned.handle_async_request(request)
        if not _peer_matches(response.extensions.get("network_stream"), pin):
            await response.aclose()
            raise CertificateMismatch(_MISMATCH, request=request)
        return response

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._pinned is not None:
            await self._pinned.aclose()


_MISMATCH = "the server's TLS key does not match the certificate its hotkey published on chain"
