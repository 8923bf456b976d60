"""The miner's TLS identity: a persisted Ed25519 key, a self-signed certificate, and its on-chain pin.

Validators cannot check a miner's certificate against a CA (miners are IP addresses), so trust
comes from the chain instead: the miner publishes its TLS public key with ``ServeAxonTls``
(``certificate`` = one algorithm byte + the raw key, see :mod:`protocol.tls_pin`) and clients
accept only a server holding that key. The key is what is pinned, so the certificate itself can
be re-issued (expiry, new name) without touching the chain.

Files, under the directory given (the miner uses ``<home>/tls``; mode 0700): ``key.pem``
(PKCS#8, unencrypted, mode 0600) and ``cert.pem``. Writes are atomic, and processes sharing the
directory (several miners with one home) take a lock on ``.lock`` there, so they all end up with
one key and a certificate that matches it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from protocol.errors import ConfigError
from protocol.files import exclusive_lock, write_atomic
from protocol.tls_pin import certificate_bytes

__all__ = ["CERT_FILENAME", "KEY_FILENAME", "TlsIdentity", "ensure_tls_identity"]

KEY_FILENAME = "key.pem"
CERT_FILENAME = "cert.pem"
_VALID_DAYS = 825
_RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """Where the key and certificate live, and the bytes to publish on chain."""

    keyfile: Path
    certfile: Path
    certificate: bytes
    """``ServeAxonTls`` certificate field: ``0x01`` + the 32-byte Ed25519 public key."""


def ensure_tls_identity(
    directory: Path, *, hostnames: tuple[str, ...] = (), now: dt.datetime | None = None
) -> TlsIdentity:
    """Load the identity from ``directory``, creating the key and certificate when absent.

    A certificate that is missing, expires within 30 days or does not match the key is re-issued
    for the same key (the on-chain pin stays valid). ``hostnames`` (names or IP addresses) go in
    the certificate's subjectAltName; pinning does not need them. Raises :class:`ConfigError`
    when an existing key file cannot be read: it is never replaced silently, since the published
    pin would stop matching.
    """
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with exclusive_lock(directory / ".lock"):
        return _load_or_create(directory, hostnames, now)


def _load_or_create(directory: Path, hostnames: tuple[str, ...], now: dt.datetime) -> TlsIdentity:
    keyfile, certfile = directory / KEY_FILENAME, directory / CERT_FILENAME
    if keyfile.exists():
        key = _load_key(keyfile)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_atomic(keyfile, pem, mode=0o600)
    public = key.public_key()
    if not _certificate_usable(certfile, public, now):
        write_atomic(certfile, _self_signed(key, hostnames, now).public_bytes(serialization.Encoding.PEM), mode=0o644)
    return TlsIdentity(keyfile=keyfile, certfile=certfile, certificate=certificate_bytes(public))


def _load_key(keyfile: Path) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the TLS key {keyfile}: {exc}; move it away to create a new one") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"the TLS key {keyfile} is a {type(key).__name__}, not Ed25519")
    return key


def _certificate_usable(certfile: Path, public: ed25519.Ed25519PublicKey, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    except (OSError, ValueError):
        return False
    same_key = certificate_bytes(cert.public_key()) == certificate_bytes(public)
    return same_key and cert.not_valid_before_utc <= now and cert.not_valid_after_utc - _RENEW_BEFORE > now


def _self_signed(key: ed25519.Ed25519PrivateKey, hostnames: tuple[str, ...], now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "axongate miner")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if hostnames:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), False)
    return builder.sign(key, algorithm=None)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
