#!/usr/bin/env bash
# One entry point for the measurements on a GPU host behind docs/results. Run from the project root, after
# vLLM's parts are in /tmp/vw (../shared/gpu/vllm-pack.sh writes them; the device tool's notes say how to send
# them). Each task fits one 10-minute call; results land in $OUT (a summary plus one archive of the logs).
#
#   bash benchmarks/gpu.sh install                     # vLLM (and the app's wheels in .aw/, if carried) into /tmp
#   bash benchmarks/gpu.sh planner-rows NAME...        # one engine start per catalog model (dummy weights, eager,
#                                                      # MAX_MODEL_LEN=8192): vLLM's log and memory beside the plan
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:/tmp/appsite:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p "$L" /tmp/models
task=${1:?usage: gpu.sh install|planner-rows NAME...}; shift
# a call is cut at 600 s: archive whatever the logs hold at 570 s, in case the task runs long. Its output goes
# to /dev/null: a background process holding the call's stdout keeps the call open until it ends.
( sleep 570; tar czf "$OUT/$task-logs.tgz" -C "$OUT" logs ) >/dev/null 2>&1 & WATCHDOG=$!
# DeepGEMM's warm-up JIT-compiles ~1,700 kernels for a block-FP8 model (minutes) after the KV cache is sized
export VLLM_DEEP_GEMM_WARMUP=${VLLM_DEEP_GEMM_WARMUP:-skip}

install() {
  [ -d /tmp/site/vllm ] || bash /tmp/vw/vllm-install.sh 2>&1 | tail -1
  if [ -d .aw ] && [ ! -d /tmp/appsite/gradio ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/appsite .aw/*.whl 2>&1 | tail -2
  fi
  nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv | tee "$L/nvidia-smi.csv"
  python3 -c "import transformers, vllm; print('transformers', transformers.__version__, 'vllm', vllm.__version__)"
}
model_dir() { [ -d "/tmp/models/$1" ] || python3 -m playground.model_dirs "$1" "/tmp/models/$1" >/dev/null; echo "/tmp/models/$1"; }
measure() {  # name timeout_s args...: one engine start in a fresh process, its JSON lines and log lines
  local name=$1 limit=$2; shift 2
  VLLM_LOGGING_LEVEL=DEBUG setsid timeout "$limit" python3 benchmarks/measure_kv.py "$@" > "$L/m-$name.log" 2>&1 &
  local pid=$!; wait $pid; local rc=$?; kill -9 -- -$pid 2>/dev/null
  echo "== $name rc=$rc"
  grep -aE '^\{' "$L/m-$name.log" | cut -c1-4000
  grep -aoE "(Model loading took|Available KV cache memory|GPU KV cache size|Maximum concurrency|Using [A-Za-z0-9_]+ (backend|kernel|Kernel)|Using [A-Za-z]+LinearKernel|[A-Za-z0-9_]*[Mm]arlin[^\r]{0,60}|non-torch forward increase memory|torch peak memory increase|Error|error:)[^\r]{0,160}" "$L/m-$name.log" | sort -u | head -20
  sleep 2
}

case "$task" in
  install) install ;;
  planner-rows)
    install >/dev/null
    for name in "$@"; do
      measure "$name" "${ROW_TIMEOUT:-150}" --model-dir "$(model_dir "$name")" --dtype "${DTYPE:-auto}" \
        --max-model-len "${MAX_MODEL_LEN:-8192}" --enforce-eager --inspect
    done 2>&1 | tee "$OUT/planner-rows.txt" ;;
  *) echo "unknown task $task" >&2; exit 2 ;;
esac
pkill -P $WATCHDOG 2>/dev/null; kill $WATCHDOG 2>/dev/null
tar czf "$OUT/$task-logs.tgz" -C "$OUT" logs
