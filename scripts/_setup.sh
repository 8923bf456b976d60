# Shared set-up for scripts/test.sh and scripts/demo.sh: sourced, not executed.
# Creates or reuses .venv and installs the project; every step is idempotent and quick when done.

AXONGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$AXONGATE_ROOT/.venv"
export AXONGATE_HOME="${AXONGATE_HOME:-$HOME/.axongate}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\033[1m[axongate]\033[0m %s\n' "$*" >&2; }

pick_python() {
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    log "Python >= 3.11 is required"
    return 1
}

# ensure_venv EXTRAS: install torch (the CPU build pinned so a loose range never pulls CUDA) and the project.
ensure_venv() {
    local extras="$1" stamp
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$(pick_python)" -m venv "$VENV"
    fi
    stamp="$VENV/.axongate-$extras-$(sha256sum "$AXONGATE_ROOT/pyproject.toml" | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        log "installing axongate[$extras] into $VENV (first run takes a few minutes)"
        "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
        "$VENV/bin/python" -m pip install -q "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
        "$VENV/bin/python" -m pip install -q -e "$AXONGATE_ROOT[$extras]" 2>&1 | grep -v '^WARNING: Location' || true
        "$VENV/bin/python" -c 'import torch, transformers, bittensor, fastapi' || { log "install failed"; return 1; }
        touch "$stamp"
    fi
}

# ensure_redis: the real redis-server binary (tests start their own instances on 127.0.0.1).
ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "installing redis-server (Debian package)"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
    fi
}

# prepare_model NAME: build the offline model folder once (cached under $AXONGATE_HOME/models).
prepare_model() {
    "$VENV/bin/axongate" model prepare --model "$1"
}
