#!/usr/bin/env bash
# Run the test suite: set up .venv, redis-server, the bittensor 10 side environment and the
# offline SmolLM2 model (all idempotent), then pytest. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$AXONGATE_ROOT"

ensure_venv "cpu,dev"
ensure_redis
bash scripts/legacy_env.sh
prepare_model smollm2

log "running the tests"
exec "$VENV/bin/python" -m pytest -q -ra -p no:cacheprovider "$@"
