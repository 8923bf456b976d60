"""Legacy-axon test kit: the bittensor 10.5.0 side environment and hand-signed legacy requests.

The stock v10 SDK cannot share an interpreter with bittensor 11, so tests that need it run
``v10_driver.py`` in ``.venv-legacy`` (made by ``scripts/legacy_env.sh``) as a subprocess; they
skip, saying so, when that environment is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol.auth import legacy as legacy_auth

ROOT = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("v10_driver.py")
LEGACY_PYTHON = Path(os.environ.get("AXONGATE_LEGACY_VENV", ROOT / ".venv-legacy")) / "bin" / "python"

DENIED_URI = "//Dave"


def legacy_body(**fields: Any) -> dict[str, Any]:
    """An ``Inference`` body as a v10 dendrite sends it (terminal info and outputs included)."""
    terminal = {
        "status_code": None, "status_message": None, "process_time": None, "ip": None, "port": None,
        "version": None, "nonce": None, "uuid": None, "hotkey": None, "signature": None,
    }  # fmt: skip
    return {
        "name": "Inference", "timeout": 12.0, "total_size": 0, "header_size": 0,
        "dendrite": dict(terminal), "axon": dict(terminal), "computed_body_hash": "",
        "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "temperature": 0.0,
        "top_p": 1.0, "top_k": 0, "seed": None, "text": "", "token_ids": [], "logprobs": [], "ranks": [],
        "finish_reason": None, "usage": None, "model": None, "timings": None,
        **fields,
    }  # fmt: skip


InferenceHashFields = ("messages", "max_tokens", "temperature", "top_p", "top_k", "seed")


def legacy_request(
    keypair: Any,
    body: dict[str, Any],
    *,
    axon_hotkey: str,
    synapse: str = "Inference",
    signed_for: str | None = None,
    nonce_ns: int | None = None,
    uuid: str | None = None,
    hash_fields: tuple[str, ...] = InferenceHashFields,
) -> tuple[bytes, dict[str, str]]:
    """Body bytes and headers of a legacy request, signed by ``keypair`` for ``signed_for`` (default the axon)."""
    computed = legacy_auth.body_hash(body, hash_fields)
    headers = legacy_auth.sign_headers(
        keypair,
        synapse_name=synapse,
        axon_hotkey=signed_for or axon_hotkey,
        computed_body_hash=computed,
        uuid=uuid or str(uuidlib.uuid1()),
        nonce_ns=nonce_ns,
    )
    headers["bt_header_axon_hotkey"] = axon_hotkey
    headers["content-type"] = "application/json"
    return json.dumps(body).encode(), headers


@pytest.fixture(scope="session")
def legacy_kit() -> Any:
    """Helpers for test modules (as a fixture, so any pytest import mode finds them)."""

    class Kit:
        body = staticmethod(legacy_body)
        request = staticmethod(legacy_request)
        hash_fields = InferenceHashFields

    return Kit


@pytest.fixture(scope="session")
def run_v10() -> Callable[[dict[str, Any]], Any]:
    """Run one ``v10_driver.py`` command in the bittensor 10.5.0 environment; skip if it is absent."""
    if not LEGACY_PYTHON.exists():
        pytest.skip(f"bittensor 10.5.0 environment missing at {LEGACY_PYTHON.parent.parent}: run scripts/legacy_env.sh")

    def run(command: dict[str, Any], *, timeout_s: float = 120.0) -> Any:
        work = Path(os.environ["HOME"])
        command_path, out_path = work / "v10_command.json", work / "v10_result.json"
        command_path.write_text(json.dumps(command))
        out_path.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}
        done = subprocess.run(
            [str(LEGACY_PYTHON), str(DRIVER), str(command_path), str(out_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"v10 driver failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(out_path.read_text())

    return run


@pytest.fixture(scope="session")
def denied_keypair() -> Any:
    import bittensor as bt

    return bt.sp_core.Keypair.create_from_uri(DENIED_URI)
