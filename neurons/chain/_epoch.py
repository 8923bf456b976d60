"""The local chain's epoch: incentive and dividends from the validators' latest weights.

A documented simplification of Yuma consensus, enough for users to see what their weights would
earn:

1. Each validator (permit, stake > 0, a weight row) counts with its share of validator stake ``S_v``.
2. Rows are normalised to sum 1 (``W_vj``).
3. Consensus ``C_j`` is the stake-weighted median of column ``j`` (``kappa = 0.5``): the largest
   weight that validators holding at least half of the stake gave miner ``j``.
4. Weights above consensus are clipped: ``W'_vj = min(W_vj, C_j)``.
5. Rank ``R_j = sum_v S_v W'_vj``; incentive is ``R`` normalised to sum 1.
6. Bonds are instant (no EMA): ``B_vj = S_v W'_vj / R_j``; dividends ``D_v = sum_j B_vj I_j``,
   normalised to sum 1.

Not modelled: bond EMA and liquid alpha, permit recomputation, emission amounts, pruning.
Results are stored as u16 fractions (``PerU16``), as the chain's runtime API reports them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

U16_MAX = 65_535
KAPPA = 0.5


@dataclass(frozen=True)
class EpochScores:
    """Per-uid results of one epoch, each a fraction in 0..1."""

    rank: dict[int, float]
    trust: dict[int, float]
    consensus: dict[int, float]
    incentive: dict[int, float]
    dividends: dict[int, float]


def compute_epoch(stakes: dict[int, float], rows: dict[int, dict[int, float]]) -> EpochScores:
    """Score one epoch; ``stakes`` holds validators only, ``rows`` their raw weight rows."""
    validators = {v: s for v, s in stakes.items() if s > 0 and sum(rows.get(v, {}).values()) > 0}
    total_stake = sum(validators.values())
    if not validators or total_stake <= 0:
        return EpochScores({}, {}, {}, {}, {})
    share = {v: s / total_stake for v, s in validators.items()}
    weights: dict[int, dict[int, float]] = {}
    for v in validators:
        row_total = sum(rows[v].values())
        weights[v] = {j: w / row_total for j, w in rows[v].items() if w > 0}

    miners = sorted({j for row in weights.values() for j in row})
    consensus = {j: _stake_weighted_median(share, weights, j) for j in miners}
    clipped = {v: {j: min(w, consensus[j]) for j, w in row.items()} for v, row in weights.items()}
    rank = {j: sum(share[v] * clipped[v].get(j, 0.0) for v in validators) for j in miners}
    preclip = {j: sum(share[v] * weights[v].get(j, 0.0) for v in validators) for j in miners}
    trust = {j: (rank[j] / preclip[j]) if preclip[j] else 0.0 for j in miners}
    rank_total = sum(rank.values())
    incentive = {j: (r / rank_total) if rank_total else 0.0 for j, r in rank.items()}
    raw_dividends = {
        v: sum(share[v] * w / rank[j] * incentive[j] for j, w in clipped[v].items() if rank[j] > 0) for v in validators
    }
    dividend_total = sum(raw_dividends.values())
    dividends = {v: (d / dividend_total) if dividend_total else 0.0 for v, d in raw_dividends.items()}
    return EpochScores(rank=rank, trust=trust, consensus=consensus, incentive=incentive, dividends=dividends)


def _stake_weighted_median(share: dict[int, float], weights: dict[int, dict[int, float]], miner: int) -> float:
    """The largest ``c`` such that validators with ``W_vj >= c`` hold at least ``KAPPA`` of the stake."""
    support = 0.0
    for weight, stake in sorted(((row.get(miner, 0.0), share[v]) for v, row in weights.items()), reverse=True):
        support += stake
        if support >= KAPPA - 1e-12:
            return weight
    return 0.0


def run_due_epochs(conn: sqlite3.Connection, block: int) -> None:
    """Run the epoch of every subnet whose boundary (a multiple of ``tempo``) has passed.

    Called inside a write transaction, before any extrinsic of ``block`` is applied, so an epoch
    sees exactly the weights set before its boundary (as on chain, where the epoch runs at block
    initialisation). Several missed boundaries collapse into one run: nothing that feeds the
    epoch changed between them, because any change would have run this catch-up first.
    """
    subnets = conn.execute("SELECT netuid, tempo, last_epoch_block FROM subnets").fetchall()
    for netuid, tempo, last_epoch in subnets:
        boundary = (block // tempo) * tempo if tempo > 0 else 0
        if tempo <= 0 or boundary <= last_epoch:
            continue
        _apply_epoch(conn, netuid)
        conn.execute(
            "UPDATE subnets SET last_epoch_block = ?, epoch_index = epoch_index + ? WHERE netuid = ?",
            (boundary, max(1, (boundary - last_epoch) // tempo), netuid),
        )


def next_epoch_due(conn: sqlite3.Connection) -> int:
    """The earliest block at which some subnet's next epoch is due."""
    row = conn.execute("SELECT MIN(last_epoch_block + tempo) FROM subnets WHERE tempo > 0").fetchone()
    return int(row[0]) if row and row[0] is not None else 2**62


def _apply_epoch(conn: sqlite3.Connection, netuid: int) -> None:
    stakes = {
        uid: float(stake)
        for uid, stake in conn.execute(
            "SELECT uid, stake_rao FROM neurons WHERE netuid = ? AND validator_permit = 1", (netuid,)
        )
    }
    rows: dict[int, dict[int, float]] = {}
    for uid, dest, value in conn.execute("SELECT uid, dest, value FROM weights WHERE netuid_index = ?", (netuid,)):
        rows.setdefault(uid, {})[dest] = float(value)
    scores = compute_epoch(stakes, rows)
    uids = [uid for (uid,) in conn.execute("SELECT uid FROM neurons WHERE netuid = ?", (netuid,))]
    conn.executemany(
        "UPDATE neurons SET rank = ?, trust = ?, consensus = ?, incentive = ?, dividends = ? "
        "WHERE netuid = ? AND uid = ?",
        [
            (
                _u16(scores.rank.get(uid, 0.0)),
                _u16(scores.trust.get(uid, 0.0)),
                _u16(scores.consensus.get(uid, 0.0)),
                _u16(scores.incentive.get(uid, 0.0)),
                _u16(scores.dividends.get(uid, 0.0)),
                netuid,
                uid,
            )
            for uid in uids
        ],
    )


def _u16(fraction: float) -> int:
    return max(0, min(U16_MAX, round(fraction * U16_MAX)))
