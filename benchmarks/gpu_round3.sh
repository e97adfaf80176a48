#!/usr/bin/env bash
# Round-3 planner rows (nvidia-h100-x2 or nvidia-h200-x2), from the project root, after vLLM's parts are in /tmp/vw:
#   bash benchmarks/gpu_round3.sh a   # install; single-GPU rows, two at a time (one per GPU)
#   bash benchmarks/gpu_round3.sh b   # tensor-parallel rows over both GPUs
# Every row: one fresh process (benchmarks/measure_kv.py), dummy weights, the full DEBUG log kept in $OUT/logs.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p "$L" /tmp/models
measure() {  # gpu(s) name util len quant kv dtype tp [extra]
  local tag="$2-$5-$6-$7-u$3-l$4-tp$8" q=""
  [ "$5" = none ] || q="--quantization $5"
  # Its own session, killed whole afterwards: vLLM's engine-core and worker processes outlive a
  # finished script and would hold the GPU for the next row.
  CUDA_VISIBLE_DEVICES=$1 VLLM_LOGGING_LEVEL=DEBUG setsid timeout 280 python3 benchmarks/measure_kv.py --model-dir /tmp/models/$2 \
    --gpu-memory-utilization $3 --max-model-len $4 $q --kv-cache-dtype $6 --dtype $7 --tensor-parallel-size $8 ${9:-} \
    > "$L/m-$tag.log" 2>&1 &
  local pid=$!; wait $pid; local rc=$?; kill -9 -- -$pid 2>/dev/null; sleep 3
  echo "== $tag rc=$rc"; grep -aE '^\{' "$L/m-$tag.log" | cut -c1-1500
  grep -aoE "(Model loading took|Estimated CUDA graph memory|Available KV cache memory|GPU KV cache size|torch peak memory increase|non-torch forward increase memory|CUDA graph pool memory|Error:)[^\r]{0,110}" "$L/m-$tag.log" | sort -u
  gzip -f "$L/m-$tag.log"
}
mk() { for m in "$@"; do [ -d /tmp/models/$m ] || python3 -m playground.model_dirs $m /tmp/models/$m >/dev/null; done; }
case "$1" in
  a)
    bash /tmp/vw/vllm-install.sh 2>&1 | tail -1
    nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv > $OUT/nvidia-smi.csv
    python3 -m planner --list-gpus > $OUT/nvml.txt 2>&1
    mk qwen2.5-14b olmoe-1b-7b deepseek-v2-lite phi-3-mini llama-3.1-8b
    ( measure 0 qwen2.5-14b 0.9 8192 fp8 auto bfloat16 1 --inspect; measure 0 olmoe-1b-7b 0.9 4096 fp8 auto bfloat16 1
      measure 0 llama-3.1-8b 0.9 8192 fp8 auto bfloat16 1 ) > $OUT/gpu0.txt 2>&1 &
    ( measure 1 deepseek-v2-lite 0.9 8192 none auto bfloat16 1; measure 1 olmoe-1b-7b 0.9 4096 none auto bfloat16 1
      measure 1 phi-3-mini 0.9 4096 none auto bfloat16 1 ) > $OUT/gpu1.txt 2>&1 &
    wait; cat $OUT/nvml.txt $OUT/gpu0.txt $OUT/gpu1.txt ;;
  b)
    mk llama-3-8b qwen2.5-32b qwen3-30b-a3b
    { measure 0,1 llama-3-8b 0.9 4096 none auto bfloat16 2; measure 0,1 qwen2.5-32b 0.9 8192 fp8 auto bfloat16 2
      measure 0,1 qwen3-30b-a3b 0.9 8192 fp8 auto bfloat16 2; } > $OUT/tp2.txt 2>&1
    cat $OUT/tp2.txt ;;
  c)  # the rows a and b lost to a previous row's lingering engine processes
    mk llama-3.1-8b phi-3-mini olmoe-1b-7b deepseek-v2-lite qwen3-30b-a3b qwen2.5-32b
    ( measure 0 llama-3.1-8b 0.9 8192 fp8 auto bfloat16 1; measure 0 phi-3-mini 0.9 4096 none auto bfloat16 1 ) > $OUT/gpu0c.txt 2>&1 &
    ( measure 1 olmoe-1b-7b 0.9 4096 none auto bfloat16 1; measure 1 deepseek-v2-lite 0.9 8192 fp8 auto bfloat16 1 ) > $OUT/gpu1c.txt 2>&1 &
    wait; { measure 0,1 qwen3-30b-a3b 0.9 8192 fp8 auto bfloat16 2; measure 0,1 qwen2.5-32b 0.9 8192 fp8 auto bfloat16 2; } > $OUT/tp2c.txt 2>&1
    cat $OUT/gpu0c.txt $OUT/gpu1c.txt $OUT/tp2c.txt ;;
esac
