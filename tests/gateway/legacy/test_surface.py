"""The legacy pieces keep their promised surface: a copyable synapse file and a pinned package API."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import gateway.legacy

ROOT = Path(__file__).resolve().parents[3]


def test_synapse_file_imports_only_bittensor_pydantic_and_the_standard_library() -> None:
    tree = ast.parse((ROOT / "protocol" / "legacy.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    outside_stdlib = {name for name in imported if name not in sys.stdlib_module_names}
    assert outside_stdlib == {"bittensor", "pydantic"}


def test_gateway_legacy_public_names() -> None:
    assert sorted(gateway.legacy.__all__) == ["LEGACY_SYNAPSES", "LegacyAxon"]
    assert sorted(gateway.legacy.LEGACY_SYNAPSES) == ["Capabilities", "Inference", "InferenceStream"]
