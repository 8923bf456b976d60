"""Suite-wide isolation: no network, no writes outside temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point HOME at a scratch folder so SDK caches (``~/.bittensor``) stay out of the user's home.

    ``AXONGATE_HOME`` is left alone when set, so prepared models (slow to build) are reused.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    if "AXONGATE_HOME" not in os.environ:
        monkeypatch.setenv("AXONGATE_HOME", str(home / ".axongate"))


@pytest.fixture(scope="session")
def model_home() -> Path:
    """Where prepared models live for the whole session (``AXONGATE_HOME`` or a scratch folder)."""
    path = Path(os.environ.get("AXONGATE_HOME") or Path.home() / ".axongate")
    path.mkdir(parents=True, exist_ok=True)
    return path
