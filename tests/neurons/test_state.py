"""Validator state: round trip, hotkey changes, missing/corrupt files, and atomic writes under SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loguru import logger

from neurons.state import ValidatorState, load_state, save_state


@pytest.fixture
def warnings() -> list[str]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)


def test_state_round_trips_and_a_restart_resumes(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = ValidatorState()
    state.sync_hotkeys({0: "hk-a", 1: "hk-b"})
    state.record_step({0: 1.0, 1: 0.0}, {0: True, 1: False}, alpha=0.5)
    state.last_weights_block = 120
    save_state(state, path)
    resumed = load_state(path)
    assert resumed == state
    assert resumed.step == 1 and resumed.scores() == {0: 0.5, 1: 0.0}
    assert resumed.miners[0].verified == 1 and resumed.miners[1].queries == 1


def test_a_new_hotkey_on_a_uid_restarts_its_score_and_gone_uids_are_forgotten() -> None:
    state = ValidatorState()
    state.sync_hotkeys({0: "hk-a", 1: "hk-b", 2: "hk-c"})
    state.record_step({0: 1.0, 1: 1.0, 2: 1.0}, {}, alpha=1.0)
    replaced = state.sync_hotkeys({0: "hk-a", 1: "hk-new"})
    assert replaced == [1]
    assert state.scores() == {0: 1.0, 1: 0.0}
    assert state.miners[1].hotkey == "hk-new"


def test_missing_state_starts_fresh(tmp_path: Path) -> None:
    assert load_state(tmp_path / "absent.json") == ValidatorState()


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 1, "step": -5}', b"\x00\xff" * 10, b""])
def test_corrupt_state_is_reported_kept_aside_and_replaced_by_a_fresh_one(
    tmp_path: Path, warnings: list[str], content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    assert load_state(path) == ValidatorState()
    assert not path.exists()
    assert (tmp_path / "state.json.corrupt").read_bytes() == content
    assert any(str(path) in m and "corrupt" in m for m in warnings)


_WRITER = """
import sys
from pathlib import Path
from neurons.state import MinerRecord, ValidatorState, save_state

path = Path(sys.argv[1])
state = ValidatorState()
# Large enough that a torn write would be visible as invalid JSON.
state.miners = {uid: MinerRecord(hotkey="5" + "x" * 47) for uid in range(2000)}
print("ready", flush=True)
while True:
    state.step += 1
    save_state(state, path)
"""


def test_sigkill_during_writes_leaves_an_old_or_new_complete_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    for delay_s in (0.05, 0.13, 0.21, 0.37):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        state = load_state(path)  # a torn file would come back as a fresh state (step 0)
        assert state.step > 0 and len(state.miners) == 2000
        assert json.loads(path.read_text())["step"] == state.step
    assert not (tmp_path / "state.json.corrupt").exists()
    assert not list(tmp_path.glob(".state.json.*.tmp")), "leftovers of killed writes are cleaned on load"
