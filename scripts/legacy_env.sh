#!/usr/bin/env bash
# Create (or reuse) .venv-legacy: bittensor 10.5.0, the last SDK with the axon/dendrite stack.
#
# The legacy-compatibility tests and the axon benchmark drive the stock v10 Dendrite and Axon
# from this side environment, as subprocesses, because bittensor 10 and 11 cannot share one
# interpreter. Idempotent: a second run only checks the pinned version and returns.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AXONGATE_LEGACY_VENV:-$ROOT/.venv-legacy}"
PYTHON="${PYTHON:-python3.11}"
PIN="bittensor==10.5.0"

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md
import sys
sys.exit(0 if md.version("bittensor") == "10.5.0" else 1)
PY
then
    echo "legacy env ready: $VENV ($PIN)"
    exit 0
fi

command -v "$PYTHON" >/dev/null || PYTHON=python3
echo "creating legacy env at $VENV with $PIN (one-time, a few minutes)"
"$PYTHON" -m venv "$VENV"
# pip warns once per package about configured local indexes that do not exist here; drop that noise.
quiet_pip() { "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }; }
quiet_pip --upgrade pip
quiet_pip "$PIN"
"$VENV/bin/python" -c "import bittensor, importlib.metadata as md; print('legacy env ready:', md.version('bittensor'))"
