"""Read an offline wandb run (``run-<id>.wandb``) back: its records, and the logged history.

The file is a 7-byte header (``:W&B``, two magic bytes, a version byte) followed by LevelDB
log-format records in 32 KiB blocks counted from the start of the file. Each fragment has a
4-byte checksum, a 2-byte little-endian length and a 1-byte type (1 full, 2 first, 3 middle,
4 last); a block tail too short for a fragment header is zero padding. Each reassembled record
is a ``wandb_internal_pb2.Record``; ``history`` records carry the logged keys with JSON values.
Wandb ships no reader for this format any more; tests and researchers use this one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["find_run_file", "read_config", "read_history", "read_records"]

_HEADER = b":W&B"
_FILE_HEADER_BYTES = 7
_BLOCK_BYTES = 32 * 1024
_FRAGMENT_HEADER_BYTES = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def find_run_file(run_dir: Path) -> Path:
    """The ``.wandb`` file inside a run folder; raises ``FileNotFoundError`` if there is none."""
    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    return files[0]


def _payloads(data: bytes) -> Iterator[bytes]:
    """Reassembled record payloads; stops quietly at a truncated tail (a run killed mid-write)."""
    pos = _FILE_HEADER_BYTES
    pending: list[bytes] = []
    while pos + _FRAGMENT_HEADER_BYTES <= len(data):
        left_in_block = _BLOCK_BYTES - pos % _BLOCK_BYTES
        if left_in_block < _FRAGMENT_HEADER_BYTES:
            pos += left_in_block
            continue
        _checksum, length, kind = struct.unpack_from("<IHB", data, pos)
        start = pos + _FRAGMENT_HEADER_BYTES
        if start + length > len(data):
            return
        chunk = data[start : start + length]
        pos = start + length
        if kind == _FULL:
            pending = []
            yield chunk
        elif kind == _FIRST:
            pending = [chunk]
        elif kind == _MIDDLE and pending:
            pending.append(chunk)
        elif kind == _LAST and pending:
            pending.append(chunk)
            yield b"".join(pending)
            pending = []
        elif kind == 0 and length == 0:
            pos += _BLOCK_BYTES - pos % _BLOCK_BYTES if pos % _BLOCK_BYTES else 0
        else:
            raise ValueError(f"malformed record fragment (type {kind}) at byte {pos - length - _FRAGMENT_HEADER_BYTES}")


def read_records(path: Path) -> list[Any]:
    """Every ``wandb_internal_pb2.Record`` in a ``.wandb`` file, in order; raises ``ValueError`` if not one."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(_HEADER):
        raise ValueError(f"{path} is not a wandb run file (bad header)")
    records = []
    for payload in _payloads(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _run_file(run: Path) -> Path:
    path = Path(run)
    return find_run_file(path) if path.is_dir() else path


def read_config(run: Path) -> dict[str, Any]:
    """The run's config (given at start and updated later) of a run folder or ``.wandb`` file."""
    config: dict[str, Any] = {}
    for record in read_records(_run_file(run)):
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else ()
        for item in updates:
            key = ".".join(item.nested_key) if item.nested_key else item.key
            config[key] = json.loads(item.value_json)
    return config


def read_history(run: Path) -> list[dict[str, Any]]:
    """The logged history rows (one dict per ``run.log`` step) of a run folder or ``.wandb`` file.

    Nested values (a logged table's reference, for instance) come back flattened with dotted keys.
    """
    rows = []
    for record in read_records(_run_file(run)):
        if record.WhichOneof("record_type") != "history":
            continue
        row: dict[str, Any] = {}
        for item in record.history.item:
            key = ".".join(item.nested_key) if item.nested_key else item.key
            row[key] = json.loads(item.value_json)
        rows.append(row)
    return rows
