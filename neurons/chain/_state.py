"""Read side of the local chain: storage items and runtime API calls, decoded as the SDK expects.

Values come back in the shapes the SDK's RPC backend produces (plain ints, lists, dicts, ss58
strings), so the SDK's own decoders run unchanged. Only the items the supported flows read are
served; anything else raises ``ChainError`` naming the item, rather than inventing a default.

The local chain keeps no history: a read pinned to an earlier block sees the latest state (block
numbers in results still name the pinned block).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from bittensor.result import ChainError

from ._store import ChainClock

GLOBAL_MAX_SUBNET_COUNT = 4096
_Reader = Callable[[sqlite3.Connection, int, list], Any]


def _subnet(conn: sqlite3.Connection, netuid: int, column: str) -> Any:
    row = conn.execute(f"SELECT {column} FROM subnets WHERE netuid = ?", (int(netuid),)).fetchone()
    return None if row is None else row[0]


def _per_uid(conn: sqlite3.Connection, netuid: int, column: str) -> list | None:
    if _subnet(conn, netuid, "netuid") is None:
        return None
    return [v for (v,) in conn.execute(f"SELECT {column} FROM neurons WHERE netuid = ? ORDER BY uid", (int(netuid),))]


def _mechanism_netuid(index: int) -> int | None:
    """The netuid of mechanism storage index ``mechid * 4096 + netuid``; None for mechid != 0."""
    return index if 0 <= index < GLOBAL_MAX_SUBNET_COUNT else None


def _axon(conn: sqlite3.Connection, netuid: int, hotkey: str) -> dict | None:
    row = conn.execute(
        "SELECT block, version, ip, port, ip_type, protocol FROM axons WHERE netuid = ? AND hotkey = ?",
        (int(netuid), hotkey),
    ).fetchone()
    if row is None:
        return None
    block, version, ip, port, ip_type, protocol = row
    return {
        "block": block,
        "version": version,
        "ip": int(ip),
        "port": port,
        "ip_type": ip_type,
        "protocol": protocol,
        "placeholder1": 0,
        "placeholder2": 0,
    }


_EMPTY_AXON = {
    "block": 0,
    "version": 0,
    "ip": 0,
    "port": 0,
    "ip_type": 0,
    "protocol": 0,
    "placeholder1": 0,
    "placeholder2": 0,
}


def _certificate(conn: sqlite3.Connection, netuid: int, hotkey: str) -> dict | None:
    row = conn.execute(
        "SELECT algorithm, public_key FROM certificates WHERE netuid = ? AND hotkey = ?", (int(netuid), hotkey)
    ).fetchone()
    return None if row is None else {"algorithm": row[0], "public_key": "0x" + bytes(row[1]).hex()}


def _scalar(column: str, cast: Callable[[Any], Any] = int) -> _Reader:
    def read(conn: sqlite3.Connection, block: int, params: list) -> Any:
        value = _subnet(conn, params[0], column)
        return None if value is None else cast(value)

    return read


def _per_mechanism_uid(conn: sqlite3.Connection, index: Any, column: str) -> list | None:
    netuid = _mechanism_netuid(int(index))
    return None if netuid is None else _per_uid(conn, netuid, column)


def _last_update(conn: sqlite3.Connection, block: int, params: list) -> Any:
    return _per_mechanism_uid(conn, params[0], "last_update")


def _weights_row(conn: sqlite3.Connection, block: int, params: list) -> Any:
    rows = conn.execute(
        "SELECT dest, value FROM weights WHERE netuid_index = ? AND uid = ? ORDER BY dest", (int(params[0]), params[1])
    ).fetchall()
    return [(int(d), int(v)) for d, v in rows]


def _uid(conn: sqlite3.Connection, block: int, params: list) -> Any:
    row = conn.execute(
        "SELECT uid FROM neurons WHERE netuid = ? AND hotkey = ?", (int(params[0]), params[1])
    ).fetchone()
    return None if row is None else int(row[0])


def _keys(conn: sqlite3.Connection, block: int, params: list) -> Any:
    row = conn.execute(
        "SELECT hotkey FROM neurons WHERE netuid = ? AND uid = ?", (int(params[0]), params[1])
    ).fetchone()
    return None if row is None else row[0]


def _owner(conn: sqlite3.Connection, block: int, params: list) -> Any:
    row = conn.execute("SELECT coldkey FROM neurons WHERE hotkey = ? LIMIT 1", (params[0],)).fetchone()
    return None if row is None else row[0]


def _is_member(conn: sqlite3.Connection, block: int, params: list) -> Any:
    return _uid(conn, block, [params[1], params[0]]) is not None


_STORAGE: dict[tuple[str, str], _Reader] = {
    ("SubtensorModule", "Uids"): _uid,
    ("SubtensorModule", "Keys"): _keys,
    ("SubtensorModule", "Owner"): _owner,
    ("SubtensorModule", "IsNetworkMember"): _is_member,
    ("SubtensorModule", "NetworksAdded"): lambda c, b, p: _subnet(c, p[0], "netuid") is not None,
    ("SubtensorModule", "CommitRevealWeightsEnabled"): _scalar("commit_reveal", bool),
    ("SubtensorModule", "WeightsSetRateLimit"): _scalar("weights_rate_limit"),
    ("SubtensorModule", "MinAllowedWeights"): _scalar("min_allowed_weights"),
    ("SubtensorModule", "MaxWeightsLimit"): _scalar("max_weights_limit"),
    ("SubtensorModule", "ServingRateLimit"): _scalar("serving_rate_limit"),
    ("SubtensorModule", "WeightsVersionKey"): _scalar("weights_version_key"),
    ("SubtensorModule", "MaxAllowedUids"): _scalar("max_allowed_uids"),
    ("SubtensorModule", "Tempo"): _scalar("tempo"),
    ("SubtensorModule", "RevealPeriodEpochs"): _scalar("reveal_period_epochs"),
    ("SubtensorModule", "LastEpochBlock"): _scalar("last_epoch_block"),
    ("SubtensorModule", "SubnetEpochIndex"): _scalar("epoch_index"),
    ("SubtensorModule", "SubnetOwner"): _scalar("owner_coldkey", str),
    ("SubtensorModule", "SubnetOwnerHotkey"): _scalar("owner_hotkey", str),
    ("SubtensorModule", "PendingEpochAt"): lambda c, b, p: 0 if _subnet(c, p[0], "netuid") is not None else None,
    ("SubtensorModule", "MechanismCountCurrent"): lambda c, b, p: 1 if _subnet(c, p[0], "netuid") is not None else None,
    ("SubtensorModule", "SubnetEpochConsensus"): lambda c, b, p: (
        "Yuma" if _subnet(c, p[0], "netuid") is not None else None
    ),
    ("SubtensorModule", "BlocksSinceLastStep"): lambda c, b, p: _since(b, _subnet(c, p[0], "last_epoch_block")),
    ("SubtensorModule", "SubnetworkN"): lambda c, b, p: len(_per_uid(c, p[0], "uid") or []),
    ("SubtensorModule", "ValidatorPermit"): lambda c, b, p: [
        bool(v) for v in _per_uid(c, p[0], "validator_permit") or []
    ],
    ("SubtensorModule", "Active"): lambda c, b, p: [True for _ in _per_uid(c, p[0], "uid") or []],
    ("SubtensorModule", "LastUpdate"): _last_update,
    ("SubtensorModule", "Incentive"): lambda c, b, p: _per_mechanism_uid(c, p[0], "incentive"),
    ("SubtensorModule", "Dividends"): lambda c, b, p: _per_uid(c, p[0], "dividends"),
    ("SubtensorModule", "Weights"): _weights_row,
    ("SubtensorModule", "Axons"): lambda c, b, p: _axon(c, p[0], p[1]),
    ("SubtensorModule", "NeuronCertificates"): lambda c, b, p: _certificate(c, p[0], p[1]),
    ("SubtensorModule", "TotalNetworks"): lambda c, b, p: c.execute("SELECT COUNT(*) FROM subnets").fetchone()[0],
}


def _since(block: int, last: Any) -> int | None:
    return None if last is None else max(0, block - int(last))


def query(conn: sqlite3.Connection, clock: ChainClock, block: int, module: str, name: str, params: list) -> Any:
    """One storage item; ``None`` when the key is absent (as the RPC backend reports it)."""
    if (module, name) == ("Timestamp", "Now"):
        return clock.timestamp_ms(block)
    reader = _STORAGE.get((module, name))
    if reader is None:
        raise ChainError(f"storage {module}.{name} is not available on the local chain")
    try:
        return reader(conn, block, list(params))
    except (IndexError, TypeError, ValueError) as exc:
        raise ChainError(f"bad parameters for storage {module}.{name}: {params!r} ({exc})") from None


def query_map(conn: sqlite3.Connection, block: int, module: str, name: str, params: list) -> list[tuple[Any, Any]]:
    """A storage map's ``(key, value)`` pairs under the given key prefix."""
    key = (module, name)
    if module == "Commitments":
        return []
    if key == ("SubtensorModule", "TokenSymbol"):
        return [(int(n), list(symbol.encode())) for n, symbol in conn.execute("SELECT netuid, symbol FROM subnets")]
    if key == ("SubtensorModule", "Weights"):
        rows: dict[int, list[tuple[int, int]]] = {}
        for uid, dest, value in conn.execute(
            "SELECT uid, dest, value FROM weights WHERE netuid_index = ? ORDER BY uid, dest", (int(params[0]),)
        ):
            rows.setdefault(int(uid), []).append((int(dest), int(value)))
        return sorted(rows.items())
    if key == ("SubtensorModule", "Uids"):
        return [
            (hk, int(uid))
            for uid, hk in conn.execute("SELECT uid, hotkey FROM neurons WHERE netuid = ?", (int(params[0]),))
        ]
    if key == ("SubtensorModule", "Axons"):
        hotkeys = [hk for (hk,) in conn.execute("SELECT hotkey FROM axons WHERE netuid = ?", (int(params[0]),))]
        return [(hk, _axon(conn, params[0], hk)) for hk in hotkeys]
    if key == ("SubtensorModule", "NeuronCertificates"):
        hotkeys = [hk for (hk,) in conn.execute("SELECT hotkey FROM certificates WHERE netuid = ?", (int(params[0]),))]
        return [(hk, _certificate(conn, params[0], hk)) for hk in hotkeys]
    if key == ("SubtensorModule", "IsNetworkMember"):
        return [(int(n), True) for (n,) in conn.execute("SELECT netuid FROM neurons WHERE hotkey = ?", (params[0],))]
    if key == ("SubtensorModule", "TimelockedWeightCommits"):
        grouped: dict[int, list] = {}
        for epoch, hotkey, commit_block, ciphertext, reveal_round in conn.execute(
            "SELECT epoch, hotkey, commit_block, ciphertext, reveal_round FROM weight_commits "
            "WHERE netuid_index = ? ORDER BY rowid",
            (int(params[0]),),
        ):
            grouped.setdefault(int(epoch), []).append(
                (hotkey, commit_block, "0x" + bytes(ciphertext).hex(), reveal_round)
            )
        return sorted(grouped.items())
    raise ChainError(f"storage map {module}.{name} is not available on the local chain")


def runtime_call(conn: sqlite3.Connection, block: int, api: str, method: str, params: list) -> Any:
    """The runtime APIs the metagraph and neuron reads use."""
    if (api, method) == ("SubnetInfoRuntimeApi", "get_metagraph"):
        return metagraph(conn, block, int(params[0]))
    if (api, method) in (("NeuronInfoRuntimeApi", "get_neurons_lite"), ("NeuronInfoRuntimeApi", "get_neurons")):
        return neurons(conn, int(params[0]), with_weights=method == "get_neurons")
    if (api, method) == ("SubnetInfoRuntimeApi", "get_next_epoch_start_block"):
        last, tempo = _subnet(conn, params[0], "last_epoch_block"), _subnet(conn, params[0], "tempo")
        return None if last is None else int(last) + int(tempo)
    raise ChainError(f"runtime API {api}.{method} is not available on the local chain")


_NEURON_COLUMNS = (
    "uid, hotkey, coldkey, stake_rao, validator_permit, registered_at, last_update, "
    "rank, trust, consensus, incentive, dividends"
)


def _neuron_rows(conn: sqlite3.Connection, netuid: int) -> list[tuple]:
    return conn.execute(f"SELECT {_NEURON_COLUMNS} FROM neurons WHERE netuid = ? ORDER BY uid", (netuid,)).fetchall()


def metagraph(conn: sqlite3.Connection, block: int, netuid: int) -> dict | None:
    """The ``SubnetInfoRuntimeApi.get_metagraph`` record, or None when the subnet is missing."""
    subnet = conn.execute(
        "SELECT name, symbol, tempo, last_epoch_block, owner_hotkey, owner_coldkey, registered_at, max_allowed_uids, "
        "weights_rate_limit, min_allowed_weights, max_weights_limit, serving_rate_limit, commit_reveal "
        "FROM subnets WHERE netuid = ?",
        (netuid,),
    ).fetchone()
    if subnet is None:
        return None
    (name, symbol, tempo, last_step, owner_hk, owner_ck, registered_at, max_uids, rate, min_w, max_w, serving, cr) = (
        subnet
    )
    rows = _neuron_rows(conn, netuid)
    columns = list(zip(*rows, strict=True)) if rows else [()] * 12
    uids, hotkeys, coldkeys, stakes, permits, reg_at, last_update, rank, trust, consensus, incentive, dividends = (
        columns
    )
    return {
        "netuid": netuid,
        "name": list(name.encode()),
        "symbol": list(symbol.encode()),
        "block": block,
        "tempo": tempo,
        "last_step": last_step,
        "blocks_since_last_step": max(0, block - last_step),
        "owner_hotkey": owner_hk,
        "owner_coldkey": owner_ck,
        "network_registered_at": registered_at,
        "num_uids": len(uids),
        "max_uids": max_uids,
        "weights_rate_limit": rate,
        "min_allowed_weights": min_w,
        "max_weights_limit": max_w,
        "serving_rate_limit": serving,
        "commit_reveal_weights_enabled": bool(cr),
        "hotkeys": list(hotkeys),
        "coldkeys": list(coldkeys),
        "axons": [_axon(conn, netuid, hk) or dict(_EMPTY_AXON) for hk in hotkeys],
        "active": [True] * len(uids),
        "validator_permit": [bool(p) for p in permits],
        "last_update": list(last_update),
        "block_at_registration": list(reg_at),
        "rank": list(rank),
        "trust": list(trust),
        "consensus": list(consensus),
        "incentives": list(incentive),
        "dividends": list(dividends),
        "pruning_score": [0] * len(uids),
        "emission": [0] * len(uids),
        "alpha_stake": list(stakes),
        "tao_stake": [0] * len(uids),
        "total_stake": list(stakes),
        "identities": [None] * len(uids),
    }


def neurons(conn: sqlite3.Connection, netuid: int, *, with_weights: bool) -> list[dict] | None:
    """The ``NeuronInfoRuntimeApi.get_neurons[_lite]`` records."""
    if _subnet(conn, netuid, "netuid") is None:
        return None
    out = []
    for uid, hk, ck, stake, permit, reg_at, last, rank, trust, consensus, incentive, dividends in _neuron_rows(
        conn, netuid
    ):
        record = {
            "uid": uid,
            "netuid": netuid,
            "hotkey": hk,
            "coldkey": ck,
            "active": True,
            "validator_permit": bool(permit),
            "last_update": last,
            "registered_at": reg_at,
            "stake": [(ck, stake)],
            "axon_info": _axon(conn, netuid, hk) or dict(_EMPTY_AXON),
            "rank": rank,
            "trust": trust,
            "consensus": consensus,
            "incentive": incentive,
            "dividends": dividends,
            "emission": 0,
            "pruning_score": 0,
        }
        if with_weights:
            record["weights"] = _weights_row(conn, 0, [netuid, uid])
            record["bonds"] = []
        out.append(record)
    return out
