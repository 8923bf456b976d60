"""Model folders: the tiny test model, the weights digest, ``resolve_model`` and the CLI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neurons.models import TINY_DIRNAME, build_tiny_model, resolve_model, weights_sha256
from neurons.models import digest as digest_module
from neurons.models import tiny as tiny_module
from neurons.models.cli import add_commands
from protocol.errors import ConfigError


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_tiny_model_is_byte_identical_across_processes(tmp_path: Path) -> None:
    here = build_tiny_model(tmp_path / "a")
    code = "import sys, pathlib, neurons.models as m; m.build_tiny_model(pathlib.Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True, capture_output=True)
    there = tmp_path / "b"
    assert _snapshot(here) == _snapshot(there)
    assert weights_sha256(here) == weights_sha256(there)
    names = set(_snapshot(here))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names


def test_tiny_build_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = build_tiny_model(tmp_path / "m")
    monkeypatch.setattr(tiny_module, "_write_tiny_model", lambda _: pytest.fail("rebuilt a complete model"))
    assert build_tiny_model(folder) == folder


def test_interrupted_tiny_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny_module, "_write_tiny_model", crash)
    with pytest.raises(KeyboardInterrupt):
        build_tiny_model(tmp_path / "m")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_weights_digest_covers_weights_only_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    (tmp_path / "config.json").write_text("{}")
    first = weights_sha256(tmp_path)
    assert len(first) == 64
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert weights_sha256(tmp_path) == first

    def no_hashing(_: list[Path]) -> str:
        raise AssertionError("digest recomputed although the weights did not change")

    monkeypatch.setattr(digest_module, "_hash_files", no_hashing)
    assert weights_sha256(tmp_path) == first
    monkeypatch.undo()

    (tmp_path / "model.safetensors").write_bytes(b"weights-2")
    changed = weights_sha256(tmp_path)
    assert changed != first
    (tmp_path / "extra.safetensors").write_bytes(b"more")
    assert weights_sha256(tmp_path) not in (first, changed)


def test_weights_digest_ignores_a_stale_or_corrupt_cache(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    expected = weights_sha256(tmp_path)
    (tmp_path / ".axongate-weights-sha256.json").write_text("not json")
    assert weights_sha256(tmp_path) == expected
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert weights_sha256(tmp_path) == expected


def test_weights_digest_needs_weights(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no weight files"):
        weights_sha256(tmp_path)
    with pytest.raises(ConfigError, match="no weight files"):
        weights_sha256(tmp_path / "missing")


def test_resolve_model(tmp_path: Path) -> None:
    tiny = resolve_model("tiny", tmp_path)
    assert tiny == tmp_path / "models" / TINY_DIRNAME and (tiny / "config.json").is_file()
    assert resolve_model(str(tiny), tmp_path / "elsewhere") == tiny
    with pytest.raises(ConfigError, match="neither"):
        resolve_model(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        resolve_model(str(tmp_path / "empty"), tmp_path)


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="axongate")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_prepare_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(["model", "prepare", "--model", "tiny", "--home", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / "models" / TINY_DIRNAME
    out = capsys.readouterr().out
    assert str(folder) in out and weights_sha256(folder) in out
    assert _run_cli(["model", "info", "--model", str(folder)]) == 0
    assert '"num_hidden_layers": 2' in capsys.readouterr().out
    with pytest.raises(ConfigError):
        _run_cli(["model", "info", "--model", str(tmp_path / "missing")])
