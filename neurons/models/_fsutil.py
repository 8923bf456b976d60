"""Crash-safe folder publication shared by the model builders."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["publish_dir", "staging_dir"]


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A fresh hidden sibling of ``target`` (same filesystem, so renaming is atomic); removed on exit."""
    staging = target.parent / f".{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_dir(staging: Path, target: Path) -> None:
    """Move a completed ``staging`` folder to ``target``, replacing an incomplete leftover."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
