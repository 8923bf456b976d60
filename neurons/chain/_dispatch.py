"""Write side of the local chain: validate and apply the extrinsics the neurons submit.

Checks follow subtensor's dispatch order and report subtensor's error names, so the SDK maps them
to the same ``ErrorCode`` as a real rejection. A rejected call raises :class:`Rejected` before
anything is written; the caller rolls the transaction back.

Supported calls: ``serve_axon``, ``serve_axon_tls``, ``set_weights``, ``set_mechanism_weights``,
``commit_timelocked_weights`` and ``commit_timelocked_mechanism_weights`` (commits are stored and
bump ``LastUpdate``; they are never revealed, because the local chain has no drand beacon).
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Callable
from typing import Any

U16_MAX = 65_535
MAX_CERTIFICATE_KEY_BYTES = 64
COMMIT_REVEAL_VERSION = 4


class Rejected(Exception):
    """The chain refused a call; ``name`` is subtensor's error name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _event(event_id: str, **attributes: Any) -> dict:
    return {"event": {"module_id": "SubtensorModule", "event_id": event_id, "attributes": attributes}}


def _subnet(conn: sqlite3.Connection, netuid: int) -> dict:
    cursor = conn.execute("SELECT * FROM subnets WHERE netuid = ?", (netuid,))
    row = cursor.fetchone()
    if row is None:
        raise Rejected("SubnetNotExists", f"subnet {netuid} does not exist on the local chain")
    return dict(zip([c[0] for c in cursor.description], row, strict=True))


def _mechanism(conn: sqlite3.Connection, netuid: int, mecid: int) -> dict:
    if mecid != 0:
        raise Rejected("MechanismDoesNotExist", f"mechanism {mecid} does not exist on subnet {netuid}")
    try:
        return _subnet(conn, netuid)
    except Rejected:
        raise Rejected("MechanismDoesNotExist", f"subnet {netuid} does not exist on the local chain") from None


def _neuron(conn: sqlite3.Connection, netuid: int, hotkey: str, error: str) -> tuple[int, int, bool, int]:
    row = conn.execute(
        "SELECT uid, stake_rao, validator_permit, last_update FROM neurons WHERE netuid = ? AND hotkey = ?",
        (netuid, hotkey),
    ).fetchone()
    if row is None:
        raise Rejected(error, f"hotkey {hotkey} is not registered on subnet {netuid}")
    return int(row[0]), int(row[1]), bool(row[2]), int(row[3])


def _check_ip(ip: int, ip_type: int, allow_internal: bool) -> None:
    if ip_type not in (4, 6):
        raise Rejected("InvalidIpType", f"ip_type must be 4 or 6, got {ip_type}")
    if ip == 0:
        return  # the "not serving" placeholder that ResetAxon publishes
    limit = 2**32 if ip_type == 4 else 2**128
    if not 0 < ip < limit:
        raise Rejected("InvalidIpAddress", f"{ip} is not an IPv{ip_type} address")
    address = ipaddress.ip_address(ip) if ip_type == 6 else ipaddress.IPv4Address(ip)
    if address.is_unspecified or address.is_multicast:
        raise Rejected("InvalidIpAddress", f"{address} cannot be served (unspecified or multicast)")
    internal = address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
    if internal and not allow_internal:
        raise Rejected("InvalidIpAddress", f"{address} is an internal address; this subnet only accepts public ones")


def serve_axon(conn: sqlite3.Connection, block: int, signer: str, params: dict) -> list[dict]:
    netuid = int(params["netuid"])
    subnet = _subnet(conn, netuid)
    _neuron(conn, netuid, signer, "HotKeyNotRegisteredInNetwork")
    ip, port, ip_type = int(params["ip"]), int(params["port"]), int(params["ip_type"])
    _check_ip(ip, ip_type, bool(subnet["allow_internal_ips"]))
    if not 0 < port <= U16_MAX:
        raise Rejected("InvalidPort", f"port must be in 1..65535, got {port}")
    protocol, version = int(params["protocol"]), int(params["version"])
    if not 0 <= protocol <= 255 or not 0 <= version < 2**32:
        raise Rejected("InvalidIpType", f"protocol {protocol} or version {version} out of range")
    previous = conn.execute("SELECT block FROM axons WHERE netuid = ? AND hotkey = ?", (netuid, signer)).fetchone()
    limit = int(subnet["serving_rate_limit"])
    if previous is not None and limit and previous[0] and block - int(previous[0]) < limit:
        raise Rejected(
            "ServingRateLimitExceeded",
            f"endpoint was served {block - previous[0]} blocks ago; the serving rate limit is {limit} blocks",
        )
    conn.execute(
        "INSERT OR REPLACE INTO axons (netuid, hotkey, block, version, ip, port, ip_type, protocol) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (netuid, signer, block, version, str(ip), port, ip_type, protocol),
    )
    certificate = params.get("certificate")
    if certificate is not None:
        data = bytes.fromhex(certificate.removeprefix("0x")) if isinstance(certificate, str) else bytes(certificate)
        # subtensor stores a certificate only when it decodes and silently keeps serving otherwise.
        if 2 <= len(data) <= 1 + MAX_CERTIFICATE_KEY_BYTES:
            conn.execute(
                "INSERT OR REPLACE INTO certificates (netuid, hotkey, algorithm, public_key) VALUES (?, ?, ?, ?)",
                (netuid, signer, data[0], data[1:]),
            )
    return [_event("AxonServed", netuid=netuid, hotkey=signer)]


def _check_rate_limit(subnet: dict, block: int, last_update: int, name: str) -> None:
    limit = int(subnet["weights_rate_limit"])
    if last_update and limit and block - last_update < limit:
        raise Rejected(
            name,
            f"weights were set {block - last_update} blocks ago; the rate limit is {limit} blocks "
            f"(retry in {limit - (block - last_update)} blocks)",
        )


def set_weights(conn: sqlite3.Connection, block: int, signer: str, params: dict) -> list[dict]:
    netuid, mecid = int(params["netuid"]), int(params.get("mecid", 0))
    subnet = _mechanism(conn, netuid, mecid)
    dests = [int(d) for d in params["dests"]]
    values = [int(v) for v in params["weights"]]
    if len(dests) != len(values):
        raise Rejected("WeightVecNotEqualSize", f"{len(dests)} uids but {len(values)} weights")
    uid, stake, permit, last_update = _neuron(conn, netuid, signer, "HotKeyNotRegisteredInSubNet")
    if stake < int(subnet["stake_threshold_rao"]):
        raise Rejected("NotEnoughStakeToSetWeights", f"stake {stake} rao is below the threshold")
    version_key = int(params.get("version_key", 0))
    if version_key < int(subnet["weights_version_key"]):
        raise Rejected(
            "IncorrectWeightVersionKey",
            f"version_key {version_key} is older than the subnet's {subnet['weights_version_key']}",
        )
    _check_rate_limit(subnet, block, last_update, "SettingWeightsTooFast")
    if len(set(dests)) != len(dests):
        raise Rejected(
            "DuplicateUids", f"uids appear more than once: {sorted({d for d in dests if dests.count(d) > 1})}"
        )
    n = conn.execute("SELECT COUNT(*) FROM neurons WHERE netuid = ?", (netuid,)).fetchone()[0]
    if len(dests) > n:
        raise Rejected("UidsLengthExceedUidsInSubNet", f"{len(dests)} weights for a subnet of {n} uids")
    unknown = sorted(d for d in dests if not 0 <= d < n)
    if unknown:
        raise Rejected("UidVecContainInvalidOne", f"uids {unknown} are not registered on subnet {netuid} ({n} uids)")
    if any(not 0 <= v <= U16_MAX for v in values):
        raise Rejected("WeightVecNotEqualSize", "weights must be u16 values (0..65535)")
    is_self_weight = dests == [uid]
    if not is_self_weight and not permit:
        raise Rejected("NeuronNoValidatorPermit", f"uid {uid} has no validator permit on subnet {netuid}")
    pairs = [(d, v) for d, v in zip(dests, values, strict=True) if v > 0]
    minimum = int(subnet["min_allowed_weights"])
    if not is_self_weight and len(pairs) < minimum:
        raise Rejected("WeightVecLengthIsLow", f"{len(pairs)} non-zero weights; subnet {netuid} requires {minimum}")
    total = sum(v for _, v in pairs)
    limit = int(subnet["max_weights_limit"])
    if not is_self_weight and total and max(v for _, v in pairs) * U16_MAX > limit * total:
        raise Rejected("MaxWeightExceeded", f"a weight exceeds the subnet's max weight limit of {limit / U16_MAX:.4f}")
    top = max((v for _, v in pairs), default=0)
    conn.execute("DELETE FROM weights WHERE netuid_index = ? AND uid = ?", (netuid, uid))
    conn.executemany(
        "INSERT INTO weights (netuid_index, uid, dest, value) VALUES (?, ?, ?, ?)",
        [(netuid, uid, d, round(v * U16_MAX / top)) for d, v in pairs],
    )
    conn.execute("UPDATE neurons SET last_update = ? WHERE netuid = ? AND uid = ?", (block, netuid, uid))
    return [_event("WeightsSet", netuid=netuid, uid=uid)]


def commit_timelocked_weights(conn: sqlite3.Connection, block: int, signer: str, params: dict) -> list[dict]:
    netuid, mecid = int(params["netuid"]), int(params.get("mecid", 0))
    subnet = _mechanism(conn, netuid, mecid)
    if not subnet["commit_reveal"]:
        raise Rejected("CommitRevealDisabled", f"commit-reveal is disabled on subnet {netuid}; set weights directly")
    uid, _stake, _permit, last_update = _neuron(conn, netuid, signer, "HotKeyNotRegisteredInSubNet")
    _check_rate_limit(subnet, block, last_update, "CommittingWeightsTooFast")
    if int(params["commit_reveal_version"]) != COMMIT_REVEAL_VERSION:
        raise Rejected("IncorrectCommitRevealVersion", f"commit_reveal_version must be {COMMIT_REVEAL_VERSION}")
    commit = params["commit"]
    data = bytes.fromhex(commit.removeprefix("0x")) if isinstance(commit, str) else bytes(commit)
    if not data:
        raise Rejected("InvalidArgument", "empty weights commit")
    conn.execute(
        "INSERT INTO weight_commits (netuid_index, hotkey, epoch, commit_block, ciphertext, reveal_round) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (netuid, signer, int(subnet["epoch_index"]), block, data, int(params["reveal_round"])),
    )
    conn.execute("UPDATE neurons SET last_update = ? WHERE netuid = ? AND uid = ?", (block, netuid, uid))
    return [_event("TimelockedWeightsCommitted", netuid=netuid, hotkey=signer, reveal_round=params["reveal_round"])]


CALLS: dict[tuple[str, str], Callable[[sqlite3.Connection, int, str, dict], list[dict]]] = {
    ("SubtensorModule", "serve_axon"): serve_axon,
    ("SubtensorModule", "serve_axon_tls"): serve_axon,
    ("SubtensorModule", "set_weights"): set_weights,
    ("SubtensorModule", "set_mechanism_weights"): set_weights,
    ("SubtensorModule", "commit_timelocked_weights"): commit_timelocked_weights,
    ("SubtensorModule", "commit_timelocked_mechanism_weights"): commit_timelocked_weights,
}


def apply_call(conn: sqlite3.Connection, block: int, signer: str, module: str, function: str, params: dict) -> list:
    """Validate and apply one call inside the caller's write transaction; returns its events."""
    handler = CALLS.get((module, function))
    if handler is None:
        raise Rejected(
            "Call", f"Transaction call is not expected: {module}.{function} is not supported by the local chain"
        )
    try:
        return handler(conn, block, signer, params)
    except (KeyError, TypeError, ValueError) as exc:
        raise Rejected("InvalidArgument", f"malformed {module}.{function} parameters: {exc}") from None
