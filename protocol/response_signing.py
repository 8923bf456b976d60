"""axongate-response/1: miner-signed responses, bound to the request they answer.

A miner signs every answer with its hotkey so a validator can prove which miner said what
(and that nothing between them changed it). The signature binds:

- the miner's hotkey (the signer) and the caller's hotkey,
- the caller's request nonce (the signing scheme's nonce, e.g. ``X-Bittensor-Nonce``),
- sha256 of the raw request body, so an answer cannot be replayed as the answer to another request,
- and the response: its status and sha256 of its body (unary), or a hash chain over every stream
  line (streams: ``h_0 = sha256(binding)``, ``h_i = sha256(h_{i-1} || line_i)``, the final line
  signs the chain head and the line count).

Unary answers carry the signature in headers (:data:`HEADER_SIGNATURE` ...); a stream ends with one
:class:`StreamSignature` line after its last chunk. ``docs/response-signing.md`` is the normative
description, with a worked example pinned by the tests. Everything here is pure (no I/O) so any
client or server can reuse it; signing takes a bittensor ``Keypair`` (``wallet.hotkey``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import bittensor as bt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "HEADER_CRYPTO",
    "HEADER_SCHEME",
    "HEADER_SIGNATURE",
    "HEADER_SIGNED_BY",
    "RESPONSE_HEADERS",
    "SCHEME",
    "RequestBinding",
    "SignatureCheck",
    "SignatureProblem",
    "StreamChain",
    "StreamSignature",
    "crypto_name",
    "parse_stream_signature",
    "request_nonce",
    "sign_stream",
    "sign_unary",
    "stream_payload",
    "unary_payload",
    "verify_stream",
    "verify_unary",
]

SCHEME = "axongate-response/1"
"""Wire name and first payload line of the format."""

HEADER_SIGNATURE = "X-Axongate-Signature"
"""``0x`` + hex of the 64-byte signature over :func:`unary_payload`."""
HEADER_SIGNED_BY = "X-Axongate-Signed-By"
"""ss58 of the signing hotkey (the miner)."""
HEADER_SCHEME = "X-Axongate-Signature-Scheme"
"""Always :data:`SCHEME`; a future version changes this value."""
HEADER_CRYPTO = "X-Axongate-Crypto"
"""``sr25519`` (bittensor hotkeys) or ``ed25519``."""
RESPONSE_HEADERS = (HEADER_SIGNATURE, HEADER_SIGNED_BY, HEADER_SCHEME, HEADER_CRYPTO)
"""Headers a proxy or CORS layer must pass through."""

_CRYPTO_BY_TYPE = {1: "sr25519", 0: "ed25519"}
_TYPE_BY_CRYPTO = {name: kind for kind, name in _CRYPTO_BY_TYPE.items()}
_SIGNATURE_HEX_CHARS = 2 + 128


def crypto_name(keypair: Any) -> str:
    """``sr25519`` or ``ed25519`` for a bittensor ``Keypair``; ``ValueError`` for anything else."""
    name = _CRYPTO_BY_TYPE.get(getattr(keypair, "crypto_type", None))  # type: ignore[arg-type]
    if name is None:
        raise ValueError(f"unsupported key type {getattr(keypair, 'crypto_type', None)!r}: sr25519 or ed25519 only")
    return name


@dataclass(frozen=True, slots=True)
class RequestBinding:
    """What a response is bound to: who answered whom, for which request.

    ``request_nonce`` is the caller's nonce exactly as its signing scheme sent it (the decimal
    ``X-Bittensor-Nonce`` for btauth/1); ``request_sha256`` is the lowercase hex sha256 of the
    raw request body bytes.
    """

    miner_ss58: str
    caller_ss58: str
    request_nonce: str
    request_sha256: str

    @classmethod
    def of(cls, *, miner_ss58: str, caller_ss58: str, request_nonce: str, request_body: bytes) -> RequestBinding:
        return cls(miner_ss58, caller_ss58, request_nonce, hashlib.sha256(request_body).hexdigest())

    def lines(self, kind: Literal["unary", "stream"]) -> list[str]:
        """The payload's first six lines: scheme, kind, miner, caller, request nonce, request sha256."""
        for value in (self.miner_ss58, self.caller_ss58, self.request_nonce, self.request_sha256):
            if "\n" in value:
                raise ValueError("binding fields must not contain newlines")
        return [SCHEME, kind, self.miner_ss58, self.caller_ss58, self.request_nonce, self.request_sha256]


_NONCE_HEADERS = ("X-Bittensor-Nonce", "Epistula-Uuid", "bt_header_dendrite_nonce")
"""Where each request signing scheme carries its nonce: btauth/1, Epistula v2, legacy axon."""


def request_nonce(request_headers: Mapping[str, str]) -> str | None:
    """The request's nonce as its signing scheme sent it (the first of :data:`_NONCE_HEADERS` present)."""
    for name in _NONCE_HEADERS:
        value = _header(request_headers, name)
        if value is not None:
            return value
    return None


def unary_payload(binding: RequestBinding, *, crypto: str, status: int, body: bytes) -> bytes:
    """The exact bytes signed for a unary answer (newline-joined UTF-8, see the spec)."""
    lines = [*binding.lines("unary"), crypto, str(int(status)), hashlib.sha256(body).hexdigest()]
    return "\n".join(lines).encode()


def stream_payload(binding: RequestBinding, *, crypto: str, lines: int, chain_head: bytes) -> bytes:
    """The exact bytes signed at the end of a stream: the binding, the line count and the chain head."""
    parts = [*binding.lines("stream"), crypto, str(int(lines)), chain_head.hex()]
    return "\n".join(parts).encode()


class StreamChain:
    """The running hash chain of a stream: ``h_0 = sha256(binding)``, ``h_i = sha256(h_{i-1} || line_i)``.

    ``line_i`` is one stream line's JSON payload: an NDJSON line without its newline, or an SSE
    event's ``data`` value. Keepalives and blank lines are not part of the chain.
    """

    __slots__ = ("binding", "head", "lines")

    def __init__(self, binding: RequestBinding) -> None:
        self.binding = binding
        self.head = hashlib.sha256("\n".join(binding.lines("stream")).encode()).digest()
        self.lines = 0

    def feed(self, line: bytes) -> None:
        self.head = hashlib.sha256(self.head + line).digest()
        self.lines += 1

    def payload(self, crypto: str) -> bytes:
        return stream_payload(self.binding, crypto=crypto, lines=self.lines, chain_head=self.head)


class StreamSignature(BaseModel):
    """The last line of a signed stream (NDJSON line, or SSE ``event: signature``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["axongate-response/1"] = SCHEME
    signed_by: str = Field(min_length=1, max_length=64)
    crypto: Literal["sr25519", "ed25519"]
    lines: int = Field(ge=0, description="How many stream lines the chain covers.")
    chain: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex chain head after the last line.")
    signature: str = Field(pattern=r"^0x[0-9a-f]{128}$")


def sign_unary(keypair: Any, binding: RequestBinding, *, status: int, body: bytes) -> dict[str, str]:
    """Headers that sign a unary answer (``status`` and raw ``body``) as ``keypair``."""
    crypto = crypto_name(keypair)
    signature = keypair.sign(unary_payload(binding, crypto=crypto, status=status, body=body))
    return {
        HEADER_SIGNATURE: "0x" + bytes(signature).hex(),
        HEADER_SIGNED_BY: keypair.ss58_address,
        HEADER_SCHEME: SCHEME,
        HEADER_CRYPTO: crypto,
    }


def sign_stream(keypair: Any, chain: StreamChain) -> StreamSignature:
    """The final line that signs everything ``chain`` has been fed."""
    crypto = crypto_name(keypair)
    signature = keypair.sign(chain.payload(crypto))
    return StreamSignature(
        signed_by=keypair.ss58_address,
        crypto=crypto,  # type: ignore[arg-type]
        lines=chain.lines,
        chain=chain.head.hex(),
        signature="0x" + bytes(signature).hex(),
    )


class SignatureProblem(StrEnum):
    """Why a response's signature does not hold."""

    UNSIGNED = "unsigned"
    """No signature where one is required."""
    BAD_SIGNATURE = "bad_signature"
    """Signed, but by someone else, over different bytes, or malformed."""


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """Outcome of a verification: ``ok``, or the ``problem`` and a message naming it."""

    ok: bool
    problem: SignatureProblem | None = None
    message: str = ""


_OK = SignatureCheck(ok=True)


def _bad(message: str) -> SignatureCheck:
    return SignatureCheck(ok=False, problem=SignatureProblem.BAD_SIGNATURE, message=message)


def _verify(payload: bytes, signature_hex: str, signer_ss58: str, crypto: str) -> bool:
    try:
        signature = bytes.fromhex(signature_hex.removeprefix("0x"))
        return bool(bt.sp_core.verify(payload, signature, signer_ss58, crypto_type=_TYPE_BY_CRYPTO[crypto]))
    except Exception:  # undecodable ss58/hex or a key the library rejects: not a valid signature
        return False


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def verify_unary(headers: Mapping[str, str], binding: RequestBinding, *, status: int, body: bytes) -> SignatureCheck:
    """Check a unary answer's signature headers against ``binding`` (whose miner must be the signer)."""
    signature = _header(headers, HEADER_SIGNATURE)
    if signature is None:
        return SignatureCheck(ok=False, problem=SignatureProblem.UNSIGNED, message="the response is not signed")
    scheme = _header(headers, HEADER_SCHEME)
    if scheme != SCHEME:
        return _bad(f"unknown response signature scheme {scheme!r}")
    signer = _header(headers, HEADER_SIGNED_BY)
    if signer != binding.miner_ss58:
        return _bad(f"response signed by {signer!r}, not by the miner {binding.miner_ss58}")
    crypto = _header(headers, HEADER_CRYPTO) or "sr25519"
    if crypto not in _TYPE_BY_CRYPTO or len(signature) != _SIGNATURE_HEX_CHARS:
        return _bad("malformed response signature headers")
    if not _verify(unary_payload(binding, crypto=crypto, status=status, body=body), signature, signer, crypto):
        return _bad("the response signature does not match its body and request")
    return _OK


def parse_stream_signature(line: bytes) -> StreamSignature | None:
    """The :class:`StreamSignature` a stream line carries, or None when it is not one."""
    if b'"signature"' not in line:
        return None
    try:
        return StreamSignature.model_validate_json(line)
    except ValidationError:
        return None


def verify_stream(chain: StreamChain, line: StreamSignature) -> SignatureCheck:
    """Check a stream's final signature line against the chain the reader computed itself."""
    binding = chain.binding
    if line.signed_by != binding.miner_ss58:
        return _bad(f"stream signed by {line.signed_by!r}, not by the miner {binding.miner_ss58}")
    if line.lines != chain.lines or not hmac.compare_digest(line.chain, chain.head.hex()):
        return _bad(
            f"stream signature covers {line.lines} lines with another chain head than the "
            f"{chain.lines} lines received: a line was altered, dropped or reordered"
        )
    if not _verify(chain.payload(line.crypto), line.signature, line.signed_by, line.crypto):
        return _bad("the stream signature does not match its lines and request")
    return _OK
