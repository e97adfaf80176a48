#!/usr/bin/env bash
# Round 5 on nvidia-h100-x1 (one H100), from the project root, after vLLM's parts are in /tmp/vw and the
# app's wheels (gradio, plotly, ...) in /tmp/aw. Each phase fits one 10-minute call; run them in order
# while the machine is warm:
#   bash benchmarks/gpu_round5.sh a   # install; where online FP8's load leaves memory (Qwen2.5-14B, Llama-2-7B:
#                                     # torch's allocation history), two hybrid models in 16-bit (issue 14)
#   bash benchmarks/gpu_round5.sh b   # hybrids in FP8, the pinned KV cache (--kv-cache-memory-bytes, issue 8),
#                                     # pytest -m gpu
#   bash benchmarks/gpu_round5.sh c   # the web path on an H100: page up, cold start, load table (issue 9)
#   bash benchmarks/gpu_round5.sh e   # install; the web path again, through the plain streaming API (one request
#                                     # per answer) beside Gradio's protocol, same app, same run (issue 9)
#   bash benchmarks/gpu_round5.sh d   # install; what 'Model loading took' holds beyond the weights, from the
#                                     # allocation history of the loader's own window (FP8 models with a gap)
# $OUT brings back 8 files at most: a summary and one archive of the logs.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:/tmp/appsite:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p "$L" /tmp/models
M7=/tmp/models/llama-2-7b
# a call is cut at 600 s: archive whatever the logs hold at 570 s, in case the phase runs long
( sleep 570; tar czf $OUT/round5-$1.tgz -C $OUT logs ) & WATCHDOG=$!
mk() { for m in "$@"; do [ -d /tmp/models/$m ] || python3 -m playground.model_dirs $m /tmp/models/$m >/dev/null; done; }
install() {
  [ -d /tmp/site/vllm ] || bash /tmp/vw/vllm-install.sh 2>&1 | tail -1
  [ -d /tmp/appsite/gradio ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target /tmp/appsite /tmp/aw/*.whl 2>&1 | tail -2
  nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv | tee $L/nvidia-smi.csv
  python3 -c "import transformers, vllm; print('transformers', transformers.__version__, 'vllm', vllm.__version__)"
}
measure() {  # name timeout_s args...: one engine start in a fresh process, its JSON lines and log lines
  local name=$1 limit=$2; shift 2
  VLLM_LOGGING_LEVEL=DEBUG setsid timeout $limit python3 benchmarks/measure_kv.py "$@" > $L/m-$name.log 2>&1 &
  local pid=$!; wait $pid; local rc=$?; kill -9 -- -$pid 2>/dev/null
  echo "== $name rc=$rc"
  grep -aE '^\{' $L/m-$name.log | cut -c1-3000
  grep -aoE "(Model loading took|Available KV cache memory|GPU KV cache size|Maximum concurrency|non-torch forward increase memory|torch peak memory increase|Estimated CUDA graph memory|Setting attention block size|Padding mamba page|Error|error:)[^\r]{0,140}" $L/m-$name.log | sort -u | head -14
  sleep 3
}
case "$1" in
  a)
    install; mk qwen2.5-14b llama-2-7b granite-4.0-h-tiny falcon-h1-7b
    measure qwen14-fp8-trace 200 --model-dir /tmp/models/qwen2.5-14b --quantization fp8 --dtype bfloat16 \
      --max-model-len 8192 --enforce-eager --trace-load
    measure llama7-fp8-trace 150 --model-dir $M7 --quantization fp8 --dtype float16 --max-model-len 2048 \
      --enforce-eager --trace-load
    measure granite-h-tiny-bf16 200 --model-dir /tmp/models/granite-4.0-h-tiny --dtype bfloat16 --max-model-len 8192
    measure falcon-h1-7b-bf16 200 --model-dir /tmp/models/falcon-h1-7b --dtype bfloat16 --max-model-len 8192 ;;
  b)
    install; mk llama-3-8b falcon-h1-7b granite-4.0-h-tiny llama-2-7b
    measure falcon-h1-7b-fp8 200 --model-dir /tmp/models/falcon-h1-7b --quantization fp8 --dtype bfloat16 --max-model-len 8192
    # the inverse plan's pinned KV cache: 32 sequences of 8,192 tokens of Llama-3-8B in FP8
    pinned=$(python3 -c "from planner import gpu_preset; from planner.fit import min_utilization_for as m; print(m('llama-3-8b', gpu_preset('h100-sxm'), concurrency=32, context_len=8192, quantization='fp8').kv_cache_memory_bytes)")
    echo "pinned kv_cache_memory_bytes=$pinned"
    measure llama3-fp8-pinned 150 --model-dir /tmp/models/llama-3-8b --quantization fp8 --dtype bfloat16 \
      --max-model-len 8192 --kv-cache-memory-bytes $pinned --enforce-eager
    # phase a: at default max_num_seqs (1024) vLLM refused the 16-bit Falcon-H1 (821 Mamba blocks); at 512 it starts
    measure falcon-h1-7b-bf16-seqs512 200 --model-dir /tmp/models/falcon-h1-7b --dtype bfloat16 --max-model-len 8192 --max-num-seqs 512 ;;
  d)
    install; mk qwen2.5-14b llama-2-7b deepseek-v2-lite llama-3-8b
    for m in "qwen14 qwen2.5-14b bfloat16 8192" "llama7 llama-2-7b float16 2048" "dsv2 deepseek-v2-lite bfloat16 8192" \
             "llama3 llama-3-8b bfloat16 4096"; do
      read -r tag model dtype len <<< "$m"
      measure $tag-fp8-window 150 --model-dir /tmp/models/$model --quantization fp8 --dtype $dtype --max-model-len $len \
        --enforce-eager --trace-load
      grep -a '"load_window"' $L/m-$tag-fp8-window.log | cut -c1-4000
    done ;;
  e)
    install; mk llama-2-7b
    python3 benchmarks/web_startup.py --port 7860 --log $L/app-cold.log --json $L/startup-cold.json --keep \
      --pidfile /tmp/app0.pid -- --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
    python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 1,16,64,256 --api generate,compare \
      --max-tokens 128 --protocol http --json $L/web-http.json
    python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 64 --api generate,compare \
      --max-tokens 128 --protocol gradio --json $L/web-gradio-64.json
    python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 64 --api generate,compare \
      --max-tokens 128 --protocol http --json $L/web-http-64-again.json
    python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 64 --api generate,compare \
      --max-tokens 128 --protocol gradio --json $L/web-gradio-64-again.json
    pid=$(cat /tmp/app0.pid); kill -9 -- -"$pid" 2>/dev/null ;;
  c)
    install; mk llama-2-7b
    python3 benchmarks/web_startup.py --port 7860 --log $L/app-cold.log --json $L/startup-cold.json --keep \
      --pidfile /tmp/app0.pid -- --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
    python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 1,16,64,256 --api generate,compare \
      --max-tokens 128 --json $L/web-inproc.json
    python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 64 --api generate,compare \
      --max-tokens 128 --json $L/web-inproc-64-again.json
    pid=$(cat /tmp/app0.pid); kill -TERM -- -"$pid" 2>/dev/null; sleep 15; kill -9 -- -"$pid" 2>/dev/null
    sleep 5
    python3 benchmarks/web_startup.py --port 7860 --log $L/app-warm.log --json $L/startup-warm.json \
      --pidfile /tmp/app0.pid -- --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
    pid=$(cat /tmp/app0.pid); kill -9 -- -"$pid" 2>/dev/null ;;
esac
kill $WATCHDOG 2>/dev/null
tar czf $OUT/round5-$1.tgz -C $OUT logs && rm -rf $L
