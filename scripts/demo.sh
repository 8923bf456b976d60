#!/usr/bin/env bash
# The local-subnet demo: set up .venv and the offline SmolLM2 model (idempotent), then run
# `axongate demo`: a local chain, one validator and three miners as separate processes on the CPU.
# Extra arguments go to `axongate demo` (see `axongate demo --help`).
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$AXONGATE_ROOT"

ensure_venv "cpu"
prepare_model smollm2
exec "$VENV/bin/axongate" demo "$@"
