#!/usr/bin/env bash
# The H100 runs, in steps that each fit one device call (10 minutes). Run from the project root on
# the GPU host after ../shared/gpu/vllm-install.sh (vLLM in /tmp/site) and the gradio wheels (.gw):
#   bash benchmarks/gpu_session.sh install-ui | measure | app | bench MODEL | overhead MODEL
# Logs go to /tmp/logs; results to $OUT (or /tmp/out).
set -u
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; LOGS=/tmp/logs; mkdir -p "$OUT" "$LOGS" /tmp/models
for m in llama-2-7b llama-2-13b llama-3-8b llama-3.1-8b qwen2.5-7b qwen2.5-14b mistral-7b; do
  [ -f /tmp/models/$m/config.json ] || python3 -m playground.model_dirs $m /tmp/models/$m >/dev/null
done

measure() {  # name util len quant kvdtype dtype
  local tag="$1-$4-$5-$6-u$2-l$3" quant=""
  [ "$4" = none ] || quant="--quantization $4"
  VLLM_LOGGING_LEVEL=DEBUG timeout 300 python3 benchmarks/measure_kv.py --model-dir /tmp/models/$1 \
    --gpu-memory-utilization $2 --max-model-len $3 $quant --kv-cache-dtype $5 --dtype $6 \
    > "$LOGS/measure-$tag.json" 2> "$LOGS/measure-$tag.log"
  echo "== $tag rc=$?"; cat "$LOGS/measure-$tag.json"
  python3 benchmarks/vllm_log.py "$LOGS/measure-$tag.log"
}

case "${1:-}" in
  install-ui)
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/gw/*.whl 2>&1 | tail -2
    python3 -c "import gradio, plotly, vllm; print('gradio', gradio.__version__, 'plotly', plotly.__version__, 'vllm', vllm.__version__)"
    ;;
  measure)
    shift
    while [ $# -ge 6 ]; do measure "$1" "$2" "$3" "$4" "$5" "$6" | tee -a "$OUT/measure.txt"; shift 6; done
    ;;
  app)
    GPU_RECORD_DIR="$OUT/gpu" PLAYGROUND_GPU_MODEL=/tmp/models/llama-2-7b PLAYGROUND_APP_LOG="$LOGS/app-gpu.log" \
      timeout 560 python3 -m pytest -m gpu tests/gpu -v -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu.txt"
    grep -E "KV cache size|Model loading took|Available KV|Estimated CUDA graph|split|Side by side|Error|error" "$LOGS/app-gpu.log" | head -40 > "$OUT/app-log-excerpt.txt"
    ;;
  bench)
    m=$2; shift 2
    timeout 580 python3 -m playground.bench --backend vllm --model /tmp/models/$m --load-format dummy \
      --max-model-len 1024 --data-dir /tmp/data "$@" 2> "$LOGS/bench-$m.log" | tee "$OUT/bench-$m.txt"
    run=$(python3 -m playground.bench --history --data-dir /tmp/data | head -1 | awk '{print substr($1,2)}')
    python3 -m playground.bench --export "$run" --format json --data-dir /tmp/data > "$OUT/bench-$m.json"
    python3 benchmarks/vllm_log.py "$LOGS/bench-$m.log" > "$OUT/bench-$m-startup.jsonl"
    grep -vE "^\s*$" "$LOGS/bench-$m.log" | grep -E "concurrency|starting|Error|error|Traceback" | tail -40
    ;;
  inspect)
    shift
    while [ $# -ge 2 ]; do
      VLLM_ALLOW_INSECURE_SERIALIZATION=1 timeout 240 python3 benchmarks/inspect_weights.py --model-dir /tmp/models/$1 \
        $([ "$2" = none ] || echo --quantization $2) > "$LOGS/inspect-$1-$2.log" 2>&1
      grep "^CENSUS" "$LOGS/inspect-$1-$2.log" | tee -a "$OUT/inspect.jsonl" | cut -c1-1500; shift 2
    done
    ;;
  overhead)
    timeout 580 python3 benchmarks/harness_overhead.py --model /tmp/models/$2 2> "$LOGS/overhead.log" | tee "$OUT/overhead.txt"
    tail -5 "$LOGS/overhead.log"
    ;;
  *) echo "usage: $0 install-ui|measure ...|inspect MODEL QUANT ...|app|bench MODEL [bench args]|overhead MODEL"; exit 2 ;;
esac
tar czf "$OUT/logs-${1:-x}.tgz" -C /tmp logs 2>/dev/null
