#!/usr/bin/env bash
# One entry point for the measurements on a GPU host behind docs/results. Run from the project root, after
# vLLM's parts are in /tmp/vw (../shared/gpu/vllm-pack.sh writes them; the device tool's notes say how to send
# them). Each task fits one 10-minute call; results land in $OUT (a summary plus one archive of the logs).
#
#   bash benchmarks/gpu.sh install                     # vLLM (and the app's wheels in .aw/, if carried) into /tmp
#   bash benchmarks/gpu.sh planner-rows NAME...        # one engine start per catalog model (dummy weights, eager,
#                                                      # MAX_MODEL_LEN=8192): vLLM's log and memory beside the plan
#   bash benchmarks/gpu.sh speed-rows                  # held-out rows for benchmarks/speed_accuracy.py: an 8B shape
#                                                      # 16-bit, online FP8 and an FP8 checkpoint (dummy weights), decode
#                                                      # at 1/8/64, 512 in / 128 out, one repeat; $OUT/speed-rows/*.json
#                                                      # go to docs/results/speed-rows/ (about 5 minutes)
#   bash benchmarks/gpu.sh calibrate [NAME]            # python -m planner calibrate on this GPU (default llama-3.1-8b):
#                                                      # $OUT/calibration/<GPU>--vllm-<version>.json and the plans before/after
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:/tmp/appsite:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p "$L" /tmp/models
task=${1:?usage: gpu.sh install|planner-rows NAME...|speed-rows|calibrate [NAME]}; shift
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
  speed-rows)
    install >/dev/null
    mkdir -p "$OUT/speed-rows"
    # SPEED_MODEL / SPEED_CHECKPOINT: catalog names; the checkpoint runs its own scheme (no --quantization)
    for spec in "${SPEED_MODEL:-llama-3.1-8b}:fp16,fp8" "${SPEED_CHECKPOINT:-llama-3.1-8b-instruct-fp8-dynamic}:fp16"; do
      name=${spec%%:*}; precisions=${spec#*:}; db=/tmp/bench-$name; rm -rf "$db"
      setsid timeout 280 python3 -m playground.bench --backend vllm --model "$(model_dir "$name")" --load-format dummy \
        --max-model-len 2048 --precisions "$precisions" --concurrency 1,8,64 --input-len 512 --output-len 128 \
        --repeats 1 --data-dir "$db" > "$L/speed-$name.log" 2>&1
      echo "== $name ($precisions) rc=$?"
      grep -aE "^(fp16|fp8)|GPU KV cache size|Model loading took|Error" "$L/speed-$name.log" | head -12
      python3 -m playground.bench --data-dir "$db" --export 1 --format json > "$OUT/speed-rows/$name.json" || true
    done 2>&1 | tee "$OUT/speed-rows.txt"
    python3 benchmarks/speed_accuracy.py 2>&1 | tail -30 | tee -a "$OUT/speed-rows.txt" ;;
  calibrate)
    install >/dev/null
    name=${1:-llama-3.1-8b}; d=$(model_dir "$name")
    {
      echo "== plan before"; python3 -m planner --model "$d" --max-model-len 2048 --speed --quantization fp8 | tail -22
      PLAYGROUND_DATA_DIR=$OUT timeout 420 python3 -m planner calibrate --model "$d" --max-model-len 2048
      echo "== calibrate rc=$?"
      echo "== plan after"; PLAYGROUND_DATA_DIR=$OUT python3 -m planner --model "$d" --max-model-len 2048 --speed --quantization fp8 | tail -24
    } 2>&1 | tee "$OUT/calibrate.txt"
    cp "$OUT/calibration/last-run.log" "$L/" 2>/dev/null ;;
  *) echo "unknown task $task" >&2; exit 2 ;;
esac
pkill -P $WATCHDOG 2>/dev/null; kill $WATCHDOG 2>/dev/null
tar czf "$OUT/$task-logs.tgz" -C "$OUT" logs
