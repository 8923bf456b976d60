"""What the chain seam hands the neurons: metagraph snapshots, write results and errors.

These types carry no bittensor objects, so code above the seam (and its tests) never imports the
SDK. Stakes are in alpha units (the subnet's own token); scores are fractions in 0..1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from protocol.errors import AxongateError

__all__ = [
    "ChainErrorCode",
    "ChainReadError",
    "ChainWriteError",
    "ChainWriteResult",
    "LocalnetError",
    "MetagraphSnapshot",
    "NeuronRecord",
]


class ChainReadError(AxongateError):
    """A chain read failed: endpoint unreachable, timed out, or the subnet/uid does not exist."""


class LocalnetError(AxongateError):
    """The local chain file is missing, already exists, or was asked for something it cannot do."""


class ChainErrorCode(StrEnum):
    """Why a chain write failed; stable values a validator loop can branch on."""

    NOT_REGISTERED = "not_registered"
    """The signing hotkey holds no uid on the subnet."""
    RATE_LIMITED = "rate_limited"
    """Weights or serving were set too recently; retry after the limit."""
    INVALID_WEIGHTS = "invalid_weights"
    """Unknown, duplicate, negative, non-finite or all-zero weights, or too few/too concentrated ones."""
    INVALID_ENDPOINT = "invalid_endpoint"
    """The ip, port or certificate cannot be published."""
    BAD_SIGNATURE = "bad_signature"
    """The extrinsic's signature does not verify for the claimed hotkey."""
    NO_VALIDATOR_PERMIT = "no_validator_permit"
    """Weights on other uids need a validator permit."""
    INSUFFICIENT_STAKE = "insufficient_stake"
    """The hotkey holds less stake than the subnet requires to set weights."""
    VERSION_KEY = "version_key"
    """The weights version key is older than the subnet requires."""
    SUBNET_NOT_FOUND = "subnet_not_found"
    """The netuid names no subnet on this network."""
    UNAVAILABLE = "unavailable"
    """The chain could not be reached or did not answer in time; the write may be retried."""
    REJECTED = "rejected"
    """Any other chain rejection; ``error_name`` carries the chain's own name."""


class ChainWriteError(AxongateError):
    """Raised by :meth:`ChainWriteResult.raise_for_failure`."""

    def __init__(self, code: ChainErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code


@dataclass(frozen=True)
class ChainWriteResult:
    """Outcome of one chain write (serve an endpoint, set weights)."""

    success: bool
    error: ChainErrorCode | None
    message: str
    block: int | None
    """Block that included the extrinsic (None when it was not included)."""
    error_name: str | None = None
    """The chain's own error name (``SettingWeightsTooFast``, ``BadProof``, ...), when known."""
    extrinsic_id: str | None = None
    """``"<block>-<index>"`` of the included extrinsic."""

    @property
    def retryable(self) -> bool:
        """True when the same write may succeed if simply retried (the chain was unreachable).

        Rate limits need waiting, not retrying; every other refusal fails identically again.
        """
        return not self.success and self.error is ChainErrorCode.UNAVAILABLE

    def raise_for_failure(self) -> None:
        if not self.success:
            raise ChainWriteError(self.error or ChainErrorCode.REJECTED, self.message)

    def __bool__(self) -> bool:
        return self.success


@dataclass(frozen=True)
class NeuronRecord:
    """One uid of the subnet as the chain reports it."""

    uid: int
    hotkey: str
    coldkey: str
    stake: float
    """Total stake in alpha units."""
    validator_permit: bool
    ip: str | None
    """Published ip, or None when the neuron serves nothing."""
    port: int | None
    protocol: int
    last_update: int
    """Block of the neuron's last weights set or commit (0 = never)."""
    incentive: float
    dividends: float

    @property
    def endpoint(self) -> str | None:
        """``host:port`` (IPv6 in brackets), or None when nothing is served."""
        if self.ip is None or self.port is None:
            return None
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class MetagraphSnapshot:
    """The subnet's neurons at one block, ordered by uid."""

    block: int
    netuid: int
    neurons: tuple[NeuronRecord, ...]

    def by_hotkey(self, hotkey: str) -> NeuronRecord | None:
        return next((n for n in self.neurons if n.hotkey == hotkey), None)

    def by_uid(self, uid: int) -> NeuronRecord | None:
        return self.neurons[uid] if 0 <= uid < len(self.neurons) and self.neurons[uid].uid == uid else None

    def serving(self) -> tuple[NeuronRecord, ...]:
        """Neurons that publish an endpoint."""
        return tuple(n for n in self.neurons if n.endpoint is not None)

    def validators(self) -> tuple[NeuronRecord, ...]:
        return tuple(n for n in self.neurons if n.validator_permit)

    def __len__(self) -> int:
        return len(self.neurons)


def decode_ip(ip: int, ip_type: int) -> str | None:
    """The text form of a chain-encoded ip; None for the 0 placeholder or an undecodable value."""
    if not ip:
        return None
    try:
        return str(ipaddress.IPv6Address(ip) if ip_type == 6 else ipaddress.IPv4Address(ip))
    except ValueError:
        return None
