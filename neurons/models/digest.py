"""``weights_sha256``: one digest that names the exact weights a model folder holds.

Miners publish it in ``Capabilities`` and validators compare it with their own copy, so both
sides must compute it the same way: sha256 over the weight files in sorted name order, each
contributing its name, its size and its bytes. Hashing ~270 MB takes about a second, so the
result is cached in a small file keyed by each file's size and mtime; a changed file
invalidates the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from protocol.errors import ConfigError

__all__ = ["WEIGHT_SUFFIXES", "weight_files", "weights_sha256"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
"""File suffixes that count as weights."""
_CACHE_NAME = ".axongate-weights-sha256.json"
_CHUNK_BYTES = 1 << 20


def weight_files(model_dir: Path) -> list[Path]:
    """The weight files directly inside ``model_dir``, sorted by name."""
    return sorted(
        (p for p in Path(model_dir).iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)),
        key=lambda p: p.name,
    )


def weights_sha256(model_dir: Path) -> str:
    """Hex sha256 over the weight files of ``model_dir``; raises ``ConfigError`` if there are none.

    Uses the cache file when every weight file still has the recorded size and mtime; writes it
    otherwise (silently skipped when the folder is read-only).
    """
    model_dir = Path(model_dir)
    files = weight_files(model_dir) if model_dir.is_dir() else []
    if not files:
        raise ConfigError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {model_dir}")
    key = {p.name: [st.st_size, st.st_mtime_ns] for p in files for st in (p.stat(),)}
    cache = model_dir / _CACHE_NAME
    try:
        cached = json.loads(cache.read_text())
        if cached.get("files") == key and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    digest = _hash_files(files)
    try:
        tmp = cache.with_name(f"{_CACHE_NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"files": key, "sha256": digest}, sort_keys=True) + "\n")
        os.replace(tmp, cache)
    except OSError:
        pass
    return digest


def _hash_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0")
        h.update(str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK_BYTES):
                h.update(chunk)
    return h.hexdigest()
