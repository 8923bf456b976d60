"""``SdkChain``: the neurons' chain seam implemented over the bittensor SDK's async ``Client``.

Every call goes through the SDK's own code paths (``subnets.metagraph``, registered reads,
``execute(SetWeights | ServeAxon | ServeAxonTls)``), against finney, testnet, any ws(s) endpoint,
or the embedded local chain. SDK exceptions stop here: reads raise :class:`ChainReadError`,
writes return :class:`ChainWriteResult` with a :class:`ChainErrorCode` and the chain's error name.
Input the chain would reject (unknown uids, all-zero weights, a malformed endpoint) is refused
before anything is signed, with a message naming the problem.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import bittensor as bt
from bittensor.result import BittensorError, ChainError, ErrorCode, ExtrinsicResult, RpcConnectionError
from bittensor.signing import public_view
from bittensor.sp_core import KeyfileError

from protocol.errors import ConfigError

from ._substrate import LocalnetSubstrate
from .config import ChainConfig
from .records import (
    ChainErrorCode,
    ChainReadError,
    ChainWriteResult,
    MetagraphSnapshot,
    NeuronRecord,
    decode_ip,
)

__all__ = ["SdkChain", "open_chain"]

T = TypeVar("T")
RAO_PER_ALPHA = 10**9
MAX_CERTIFICATE_BYTES = 65  # one algorithm byte + up to 64 bytes of public key

_BY_NAME: dict[str, ChainErrorCode] = {
    **dict.fromkeys(
        ("HotKeyNotRegisteredInSubNet", "HotKeyNotRegisteredInNetwork", "HotKeyAccountNotExists"),
        ChainErrorCode.NOT_REGISTERED,
    ),
    **dict.fromkeys(
        ("SettingWeightsTooFast", "CommittingWeightsTooFast", "ServingRateLimitExceeded", "RateLimitExceeded"),
        ChainErrorCode.RATE_LIMITED,
    ),
    **dict.fromkeys(
        (
            "WeightVecNotEqualSize",
            "DuplicateUids",
            "UidVecContainInvalidOne",
            "WeightVecLengthIsLow",
            "MaxWeightExceeded",
            "UidsLengthExceedUidsInSubNet",
        ),
        ChainErrorCode.INVALID_WEIGHTS,
    ),
    **dict.fromkeys(("InvalidIpType", "InvalidIpAddress", "InvalidPort"), ChainErrorCode.INVALID_ENDPOINT),
    **dict.fromkeys(("BadProof", "BadSigner"), ChainErrorCode.BAD_SIGNATURE),
    "NeuronNoValidatorPermit": ChainErrorCode.NO_VALIDATOR_PERMIT,
    **dict.fromkeys(("NotEnoughStakeToSetWeights", "StakeAmountTooLow"), ChainErrorCode.INSUFFICIENT_STAKE),
    "IncorrectWeightVersionKey": ChainErrorCode.VERSION_KEY,
    **dict.fromkeys(("SubnetNotExists", "MechanismDoesNotExist"), ChainErrorCode.SUBNET_NOT_FOUND),
    "Unavailable": ChainErrorCode.UNAVAILABLE,
}
_BY_SDK_CODE = {
    ErrorCode.NOT_REGISTERED: ChainErrorCode.NOT_REGISTERED,
    ErrorCode.RATE_LIMITED: ChainErrorCode.RATE_LIMITED,
    ErrorCode.SUBNET_NOT_EXISTS: ChainErrorCode.SUBNET_NOT_FOUND,
}


def _failed(code: ChainErrorCode, message: str, name: str | None = None) -> ChainWriteResult:
    return ChainWriteResult(success=False, error=code, message=message, block=None, error_name=name)


def _from_chain_error(error: ChainError, invalid: ChainErrorCode) -> ChainWriteResult:
    code = _BY_NAME.get(error.name or "") or _BY_SDK_CODE.get(error.code)
    if code is None:
        code = (
            invalid if error.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.LIMIT_EXCEEDED) else ChainErrorCode.REJECTED
        )
    return _failed(code, error.message, error.name)


def _from_extrinsic(result: ExtrinsicResult, invalid: ChainErrorCode) -> ChainWriteResult:
    if not result.success:
        return _from_chain_error(result.error or ChainError(result.message or "extrinsic failed"), invalid)
    block = None
    if result.extrinsic_id:
        head, _, _ = result.extrinsic_id.partition("-")
        block = int(head) if head.isdigit() else None
    return ChainWriteResult(True, None, result.message or "Success", block, extrinsic_id=result.extrinsic_id)


class SdkChain:
    """The chain seam over ``bt.Client``; open with :func:`open_chain`, close with :meth:`aclose`."""

    def __init__(self, client: bt.Client, config: ChainConfig, *, label: str) -> None:
        self._client = client
        self._config = config
        self.label = label
        """Human name of the chain (``finney``, ``local chain <path>``, ...), for logs and errors."""

    @property
    def netuid(self) -> int:
        return self._config.netuid

    @property
    def client(self) -> bt.Client:
        """The underlying SDK client, for reads this seam does not wrap."""
        return self._client

    async def __aenter__(self) -> SdkChain:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.close()

    async def _read(self, what: str, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, self._config.read_timeout_s)
        except TimeoutError:
            raise ChainReadError(f"{what} on {self.label} timed out after {self._config.read_timeout_s}s") from None
        except BittensorError as exc:
            raise ChainReadError(f"{what} on {self.label} failed: {exc}") from exc

    # Reads ------------------------------------------------------------------------------------

    async def block(self) -> int:
        return await self._read("block number", self._client.block())

    async def metagraph(self) -> MetagraphSnapshot:
        """The subnet's neurons with stake, permit, endpoint and scores, read at one block."""
        graph = await self._read("metagraph", self._client.subnets.metagraph(self.netuid, commitments=False))
        if graph is None:
            raise ChainReadError(f"subnet {self.netuid} does not exist on {self.label}")
        axons = graph.raw.get("axons") or []
        neurons = []
        for neuron in graph.neurons:
            axon = axons[neuron.uid] if neuron.uid < len(axons) and isinstance(axons[neuron.uid], dict) else {}
            ip = decode_ip(int(axon.get("ip") or 0), int(axon.get("ip_type") or 4))
            neurons.append(
                NeuronRecord(
                    uid=neuron.uid,
                    hotkey=neuron.hotkey,
                    coldkey=neuron.coldkey,
                    stake=neuron.total_stake.rao / RAO_PER_ALPHA,
                    validator_permit=neuron.validator_permit,
                    ip=ip,
                    port=int(axon["port"]) if ip is not None and axon.get("port") else None,
                    protocol=int(axon.get("protocol") or 0),
                    last_update=neuron.last_update,
                    incentive=neuron.incentive,
                    dividends=neuron.dividends,
                )
            )
        return MetagraphSnapshot(block=graph.block, netuid=self.netuid, neurons=tuple(neurons))

    async def uid_for_hotkey(self, hotkey_ss58: str) -> int | None:
        return await self._read("uid lookup", self._client.read("uid", hotkey_ss58=hotkey_ss58, netuid=self.netuid))

    async def is_registered(self, hotkey_ss58: str) -> bool:
        return await self.uid_for_hotkey(hotkey_ss58) is not None

    async def require_uid(self, hotkey_ss58: str) -> int:
        """The uid of ``hotkey_ss58``; raises ``ConfigError`` naming subnet and network when unregistered."""
        uid = await self.uid_for_hotkey(hotkey_ss58)
        if uid is None:
            raise ConfigError(
                f"hotkey {hotkey_ss58} is not registered on netuid {self.netuid} ({self.label}); register it first"
            )
        return uid

    async def weights_rate_limit(self) -> int:
        value = await self._read("weights rate limit", self._client.read("weights_rate_limit", netuid=self.netuid))
        return int(value or 0)

    async def blocks_since_last_update(self, uid: int) -> int:
        """Blocks since ``uid`` last set weights (the current block when it never did)."""
        value = await self._read(
            "blocks since last update", self._client.read("blocks_since_last_update", netuid=self.netuid, uid=uid)
        )
        if value is None:
            raise ChainReadError(f"uid {uid} is not registered on subnet {self.netuid} of {self.label}")
        return int(value)

    async def weights(self) -> dict[int, dict[int, float]]:
        """Validator uid -> {uid: weight}, each row normalised to sum 1, as stored on chain."""
        return await self._read("weights", self._client.read("weights", netuid=self.netuid))

    async def certificate(self, hotkey_ss58: str) -> bytes | None:
        """The hotkey's published neuron certificate (algorithm byte + public key), if any."""
        value = await self._read(
            "certificate", self._client.query(("SubtensorModule", "NeuronCertificates"), [self.netuid, hotkey_ss58])
        )
        if not isinstance(value, dict) or value.get("public_key") is None:
            return None
        key = value["public_key"]
        key = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else bytes(key)
        return bytes([int(value.get("algorithm") or 0)]) + key

    # Writes -----------------------------------------------------------------------------------

    async def serve_axon(
        self, wallet: Any, ip: str, port: int, *, certificate: bytes | None = None, protocol: int = 4
    ) -> ChainWriteResult:
        """Publish ``ip:port`` (and a certificate, via ``ServeAxonTls``) for the wallet's hotkey.

        Skips the extrinsic when the chain already holds exactly this endpoint, so restarts do not
        trip the serving rate limit.
        """
        problem = _endpoint_problem(ip, port, certificate, protocol)
        if problem:
            return _failed(ChainErrorCode.INVALID_ENDPOINT, problem)
        hotkey = _hotkey_address(wallet)
        if not await self.is_registered(hotkey):
            return _failed(ChainErrorCode.NOT_REGISTERED, f"hotkey {hotkey} is not registered on subnet {self.netuid}")
        address = ipaddress.ip_address(ip)
        current = await self._read("axon", self._client.query(("SubtensorModule", "Axons"), [self.netuid, hotkey]))
        if (
            isinstance(current, dict)
            and (int(current.get("ip") or 0), current.get("port"), current.get("protocol"))
            == (int(address), port, protocol)
            and (certificate is None or await self.certificate(hotkey) == certificate)
        ):
            return ChainWriteResult(True, None, "endpoint already published", int(current.get("block") or 0) or None)
        if certificate is None:
            intent: Any = bt.ServeAxon(netuid=self.netuid, ip=str(address), port=port, protocol=protocol)
        else:
            intent = bt.ServeAxonTls(
                netuid=self.netuid, ip=str(address), port=port, certificate="0x" + certificate.hex(), protocol=protocol
            )
        return await self._execute(intent, wallet, ChainErrorCode.INVALID_ENDPOINT)

    async def set_weights(
        self, wallet: Any, weights: Mapping[int, float], *, version_key: int | None = None
    ) -> ChainWriteResult:
        """Set the wallet hotkey's weights (plain or timelocked commit, as the subnet runs).

        ``weights`` maps uid to a non-negative relative weight; the SDK normalises and quantises.
        ``version_key`` defaults to the config's ``weights_version_key``. Waits for inclusion only.
        """
        problem = _weights_problem(weights)
        if problem:
            return _failed(ChainErrorCode.INVALID_WEIGHTS, problem)
        size = await self._read("subnet size", self._client.query(("SubtensorModule", "SubnetworkN"), [self.netuid]))
        unknown = sorted(uid for uid in weights if uid >= int(size or 0))
        if unknown:
            return _failed(
                ChainErrorCode.INVALID_WEIGHTS,
                f"weights name uids not registered on subnet {self.netuid}: {unknown} (the subnet has {size} uids)",
            )
        key = self._config.weights_version_key if version_key is None else version_key
        intent = bt.SetWeights(
            netuid=self.netuid, weights={int(u): float(w) for u, w in weights.items()}, version_key=key
        )
        return await self._execute(intent, wallet, ChainErrorCode.INVALID_WEIGHTS)

    async def _execute(self, intent: Any, wallet: Any, invalid: ChainErrorCode) -> ChainWriteResult:
        try:
            result = await asyncio.wait_for(
                self._client.execute(intent, wallet, wait_for_inclusion=True, wait_for_finalization=False),
                self._config.write_timeout_s,
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"wallet key file missing: {exc.filename or exc}") from exc
        except KeyfileError as exc:
            raise ConfigError(f"cannot unlock the wallet's hotkey: {exc}") from exc
        except TimeoutError:
            return _failed(
                ChainErrorCode.UNAVAILABLE,
                f"{intent.summary()} on {self.label} timed out after {self._config.write_timeout_s}s; "
                "it may still be included",
            )
        except RpcConnectionError as exc:
            return _failed(ChainErrorCode.UNAVAILABLE, f"{intent.summary()} on {self.label} failed: {exc}")
        except ChainError as exc:
            return _from_chain_error(exc, invalid)
        except (BittensorError, ValueError) as exc:
            return _failed(invalid, f"{intent.summary()} refused: {exc}")
        return _from_extrinsic(result, invalid)


def _hotkey_address(wallet: Any) -> str:
    try:
        return str(public_view(wallet, "hotkey").ss58_address)
    except FileNotFoundError as exc:
        raise ConfigError(f"wallet hotkey file missing: {exc.filename or exc}") from exc


def _endpoint_problem(ip: str, port: int, certificate: bytes | None, protocol: int) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"ip {ip!r} is not an IPv4 or IPv6 address"
    if address.is_unspecified or address.is_multicast:
        return f"ip {ip} cannot be dialled by peers; publish the address they should connect to"
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"port must be an integer in 1..65535, got {port!r}"
    if isinstance(protocol, bool) or not isinstance(protocol, int) or not 0 <= protocol <= 255:
        return f"protocol must be an integer in 0..255, got {protocol!r}"
    if certificate is not None and (
        not isinstance(certificate, bytes) or not 2 <= len(certificate) <= MAX_CERTIFICATE_BYTES
    ):
        return "certificate must be bytes: one algorithm byte followed by 1..64 bytes of public key"
    return None


def _weights_problem(weights: Mapping[int, float]) -> str | None:
    if not isinstance(weights, Mapping) or not weights:
        return "no weights given; pass a non-empty {uid: weight} mapping"
    bad_uids = [u for u in weights if isinstance(u, bool) or not isinstance(u, int) or not 0 <= u <= 65535]
    if bad_uids:
        return f"uids must be integers in 0..65535, got {bad_uids!r}"
    try:
        values = {u: float(w) for u, w in weights.items()}
    except (TypeError, ValueError):
        return "weights must be numbers"
    bad = sorted(u for u, w in values.items() if not math.isfinite(w) or w < 0)
    if bad:
        return f"weights must be finite and non-negative; uids {bad} are not"
    if not any(values.values()):
        return "all weights are zero; nothing to set"
    return None


async def open_chain(config: ChainConfig, home: Path) -> SdkChain:
    """Connect to the chain ``config`` names; use as ``async with await open_chain(...) as chain``.

    ``network="local"`` opens the local chain file (``config.localnet_path`` or
    ``<home>/localnet/chain.sqlite``). Raises ``ConfigError`` when that file is missing and
    ``ChainReadError`` when the endpoint cannot be reached.
    """
    if config.network == "local":
        path = config.resolved_localnet_path(home)
        if not path.is_file():
            raise ConfigError(f"no local chain at {path}; create it with `axongate localnet init`")
        client = bt.Client("local", substrate=LocalnetSubstrate(path))
        label = f"local chain {path}"
    else:
        client = bt.Client(config.network)
        label = config.network
    try:
        await asyncio.wait_for(client.connect(), config.read_timeout_s)
    except (BittensorError, TimeoutError, OSError) as exc:
        await client.close()
        raise ChainReadError(f"cannot connect to {label}: {exc or type(exc).__name__}") from exc
    return SdkChain(client, config, label=label)
