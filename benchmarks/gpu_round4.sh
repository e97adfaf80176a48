#!/usr/bin/env bash
# Round 4 on nvidia-h100-x4 (four H100s), from the project root, after vLLM's parts are in /tmp/vw and
# the app's wheels (gradio, plotly, ...) in /tmp/aw:
#   bash benchmarks/gpu_round4.sh a   # (first try, commit 8a209a5) install; GPU 0: the web path ∥ GPU 1: two `vllm serve`
#                                     # and the openai backend ∥ GPUs 2,3: one precision per GPU (its figures are kept)
#   bash benchmarks/gpu_round4.sh b   # install; GPU 0: the web path, cold and warm (issue 9) ∥ GPU 1: two `vllm serve`
#                                     # and the openai backend (issue 10) ∥ GPUs 2,3: a 70B in 16-bit at TP=2 (issue 11)
#   bash benchmarks/gpu_round4.sh c   # install; GPU 0: the 70B in FP8 on one GPU (issue 11) ∥ GPU 1: the web path again
#                                     # (issue 9) ∥ GPUs 2,3: DeepSeek-V2-Lite (MLA) at TP=2 (issue 14), then GPU 2: the
#                                     # openai backend again (issue 10) ∥ GPU 3: pytest -m gpu
#   bash benchmarks/gpu_round4.sh d   # install; GPU 0: pytest -m gpu ∥ GPU 1: the load table from 4 generator processes
# $OUT brings back 8 files at most: a summary and one archive of everything.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:/tmp/appsite:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p "$L" /tmp/models
M7=/tmp/models/llama-2-7b; M70=/tmp/models/llama-2-70b
mk() { for m in "$@"; do [ -d /tmp/models/$m ] || python3 -m playground.model_dirs $m /tmp/models/$m >/dev/null; done; }
up() { python3 -c "import sys,urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; }
waitup() { for _ in $(seq 1 "$2"); do up "$1" && return 0; sleep 1; done; echo "not up: $1"; return 1; }
api() { python3 - "$@" <<'PY'
import json, sys
from gradio_client import Client
url, name, out, *args = sys.argv[1:]
args = [json.loads(a) for a in args]
result = Client(url, verbose=False).predict(*args, api_name=name)
open(out, "w").write(json.dumps(result, indent=1, default=str))
print(name, json.dumps(result, default=str)[:600])
PY
}
killport() { pkill -f -- "--port $1" 2>/dev/null; sleep 3; pkill -9 -f -- "--port $1" 2>/dev/null; true; }
bench70() {  # gpus precision util
  setsid timeout 330 python3 -m playground.bench --backend vllm --model $M70 --load-format dummy \
    --gpu $1 --tensor-parallel-size $(echo $1 | tr ',' '\n' | wc -l) --precisions $2 --gpu-memory-utilization $3 \
    --max-model-len 4096 --concurrency 1,8,16 --input-len 512 --output-len 128 --repeats 1 --data-dir /tmp/bench70 \
    > $L/bench70-$2-gpu$1.log 2>&1 &
  local pid=$!; wait $pid; echo "== bench70 $2 gpus $1 rc=$?"; kill -9 -- -$pid 2>/dev/null
  grep -aE "GPU KV cache size|Model loading took|Available KV cache|^precision|^fp8 |^fp16 |saved as|error" $L/bench70-$2-gpu$1.log | cut -c1-220
}
stopapp() {  # pidfile: the whole process group (the app and vLLM's engine processes), then wait for the GPU
  local pid; pid=$(cat "$1" 2>/dev/null) || return 0
  kill -TERM -- -"$pid" 2>/dev/null
  for _ in $(seq 1 30); do kill -0 -- -"$pid" 2>/dev/null || break; sleep 1; done
  kill -9 -- -"$pid" 2>/dev/null; sleep 2
}
waitfree() { for _ in $(seq 1 60); do
  [ "$(nvidia-smi -i "$1" --query-gpu=memory.used --format=csv,noheader,nounits)" -lt 2000 ] && return 0; sleep 1; done; }
openai_run() {  # GPU: two vllm serve processes sharing it (the planner's split), the app in front of them
  setsid python3 -m playground.serve --model $M7 --load-format dummy --precision fp16 --port 8000 --gpu $1 --share-gpu > $L/serve-fp16.log 2>&1 &
  echo $! > /tmp/s0.pid; waitup http://127.0.0.1:8000/health 300
  setsid python3 -m playground.serve --model $M7 --load-format dummy --precision fp8 --port 8001 --gpu $1 --share-gpu > $L/serve-fp8.log 2>&1 &
  echo $! > /tmp/s1.pid; waitup http://127.0.0.1:8001/health 300
  head -1 $L/serve-fp16.log; head -1 $L/serve-fp8.log
  CUDA_VISIBLE_DEVICES=$1 python3 benchmarks/web_startup.py --port 7861 --log $L/app-openai.log --json $L/startup-openai.json --keep \
    --pidfile /tmp/app1.pid -- --backend openai --engine FP16=http://127.0.0.1:8000/v1 --engine FP8=http://127.0.0.1:8001/v1 \
    --load-test --data-dir /tmp/appdata-oai
  python3 benchmarks/web_load.py --url http://127.0.0.1:7861/ --users 1,16,64,256 --api generate,compare \
    --max-tokens 128 --json $L/web-openai.json
  python3 -c "import json; print('\n---\n'.join(json.load(open('assets/prompts.json'))['prompts'][:3]))" > /tmp/seed.txt
  api http://127.0.0.1:7861/ /compare $L/openai-seed-prompts.json "$(python3 -c 'import json;print(json.dumps(open("/tmp/seed.txt").read()))')" '0.0' '1.0' '0' '64'
  api http://127.0.0.1:7861/ /engines $L/openai-engines.json
  stopapp /tmp/app1.pid; stopapp /tmp/s1.pid; stopapp /tmp/s0.pid
}
install() {
  bash /tmp/vw/vllm-install.sh 2>&1 | tail -1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/appsite /tmp/aw/*.whl 2>&1 | tail -2
  nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv > $OUT/nvidia-smi.csv
  python3 -m planner --list-gpus > $L/nvml.txt 2>&1; cat $OUT/nvidia-smi.csv $L/nvml.txt
}
case "$1" in
  a)
    bash /tmp/vw/vllm-install.sh 2>&1 | tail -1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/appsite /tmp/aw/*.whl 2>&1 | tail -2
    python3 -c "import gradio, plotly, pynvml; print('gradio', gradio.__version__)"
    nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv > $OUT/nvidia-smi.csv; cat $OUT/nvidia-smi.csv
    python3 -m planner --list-gpus > $OUT/nvml.txt 2>&1; cat $OUT/nvml.txt
    mk llama-2-7b llama-2-70b
    (  # GPU 0: the in-process app: page up, cold start, load, the fair sweep, then a warm restart
      export CUDA_VISIBLE_DEVICES=0
      python3 benchmarks/web_startup.py --port 7860 --log $L/app-cold.log --json $OUT/startup-cold.json --keep -- \
        --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
      python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 1,16,64,256 --api generate,compare \
        --max-tokens 128 --json $OUT/web-inproc.json
      api http://127.0.0.1:7860/ /benchmark $OUT/bench-shared.json '"1,64"' 512 128 1 '"fp16,fp8"'
      killport 7860; sleep 5
      python3 benchmarks/web_startup.py --port 7860 --log $L/app-warm.log --json $OUT/startup-warm.json -- \
        --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
      killport 7860
    ) > $OUT/gpu0.txt 2>&1 &
    (  # GPU 1: two vllm serve processes sharing the GPU (the planner's split), the app in front of them
      setsid python3 -m playground.serve --model $M7 --load-format dummy --precision fp16 --port 8000 --gpu 1 --share-gpu > $L/serve-fp16.log 2>&1 &
      waitup http://127.0.0.1:8000/health 300
      setsid python3 -m playground.serve --model $M7 --load-format dummy --precision fp8 --port 8001 --gpu 1 --share-gpu > $L/serve-fp8.log 2>&1 &
      waitup http://127.0.0.1:8001/health 300
      head -1 $L/serve-fp16.log; head -1 $L/serve-fp8.log
      CUDA_VISIBLE_DEVICES=1 python3 benchmarks/web_startup.py --port 7861 --log $L/app-openai.log --json $OUT/startup-openai.json --keep -- \
        --backend openai --engine FP16=http://127.0.0.1:8000/v1 --engine FP8=http://127.0.0.1:8001/v1 --load-test --data-dir /tmp/appdata-oai
      python3 benchmarks/web_load.py --url http://127.0.0.1:7861/ --users 1,16,64,256 --api generate,compare \
        --max-tokens 128 --json $OUT/web-openai.json
      python3 -c "import json; print('\n---\n'.join(json.load(open('assets/prompts.json'))['prompts'][:3]))" > /tmp/seed.txt
      api http://127.0.0.1:7861/ /compare $OUT/openai-seed-prompts.json "$(python3 -c 'import json;print(json.dumps(open("/tmp/seed.txt").read()))')"
      api http://127.0.0.1:7861/ /benchmark $OUT/bench-openai.json '"1,64"' 512 128 1 '"fp16,fp8"'
      killport 7861; killport 8001; killport 8000
    ) > $OUT/gpu1.txt 2>&1 &
    (  # GPUs 2 and 3: each precision its own whole GPU, in-process
      python3 benchmarks/web_startup.py --port 7862 --log $L/app-2gpu.log --json $OUT/startup-2gpu.json --keep -- \
        --backend vllm --model $M7 --load-format dummy --gpus 2,3 --data-dir /tmp/appdata-2gpu
      api http://127.0.0.1:7862/ /benchmark $OUT/bench-2gpu.json '"1,64"' 512 128 1 '"fp16,fp8"'
      killport 7862
    ) > $OUT/gpu23.txt 2>&1 &
    wait
    for f in gpu0 gpu1 gpu23; do echo "######## $f"; grep -vE "^\s*$" $OUT/$f.txt | cut -c1-400 | tail -60; done ;;
  b)
    install; mk llama-2-7b llama-2-70b
    (  # GPU 0: the in-process app: page up, cold start, the load table, then a warm restart (compile cache)
      export CUDA_VISIBLE_DEVICES=0
      python3 benchmarks/web_startup.py --port 7860 --log $L/app-cold.log --json $L/startup-cold.json --keep --pidfile /tmp/app0.pid -- \
        --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
      python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 1,16,64,256 --api generate,compare \
        --max-tokens 128 --json $L/web-inproc.json
      stopapp /tmp/app0.pid; waitfree 0
      python3 benchmarks/web_startup.py --port 7860 --log $L/app-warm.log --json $L/startup-warm.json --pidfile /tmp/app0.pid -- \
        --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
      stopapp /tmp/app0.pid
    ) > $L/gpu0.txt 2>&1 &
    ( openai_run 1 ) > $L/gpu1.txt 2>&1 &  # GPU 1: the openai backend
    ( bench70 2,3 fp16 0.9 ) > $L/gpu23.txt 2>&1 &
    wait
    for f in gpu0 gpu1 gpu23; do echo "######## $f"; grep -vE "^\s*$" $L/$f.txt | cut -c1-400 | tail -40; done ;;
  c)  # after b's fixes (lazy Gradio sessions, client keep-alive): the web path and the openai backend again
    install; mk llama-2-70b deepseek-v2-lite llama-2-7b
    bench70 0 fp8 0.95 > $L/gpu0c.txt 2>&1 &
    (  # GPU 1: the in-process app, cold, and the load table
      export CUDA_VISIBLE_DEVICES=1
      python3 benchmarks/web_startup.py --port 7860 --log $L/app-cold.log --json $L/startup-cold.json --keep --pidfile /tmp/app0.pid -- \
        --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
      python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 1,16,64,256 --api generate,compare \
        --max-tokens 128 --json $L/web-inproc.json
      stopapp /tmp/app0.pid
    ) > $L/gpu1c.txt 2>&1 &
    (  # GPUs 2,3: DeepSeek-V2-Lite (MLA) at TP=2, then GPU 2: the openai backend ∥ GPU 3: pytest -m gpu
      CUDA_VISIBLE_DEVICES=2,3 VLLM_LOGGING_LEVEL=DEBUG setsid timeout 240 python3 benchmarks/measure_kv.py --model-dir /tmp/models/deepseek-v2-lite \
        --gpu-memory-utilization 0.9 --max-model-len 8192 --kv-cache-dtype auto --dtype bfloat16 --tensor-parallel-size 2 > $L/m-dsv2-tp2.log 2>&1 &
      pid=$!; wait $pid; echo "== deepseek-v2-lite tp2 rc=$?"; kill -9 -- -$pid 2>/dev/null
      grep -aE '^\{' $L/m-dsv2-tp2.log | cut -c1-1500
      grep -aoE "(Model loading took|Available KV cache memory|GPU KV cache size|non-torch forward increase memory|Error:)[^\r]{0,110}" $L/m-dsv2-tp2.log | sort -u
      waitfree 2; waitfree 3
      ( openai_run 2 ) > $L/gpu2c.txt 2>&1 &
      ( CUDA_VISIBLE_DEVICES=3 PLAYGROUND_GPU_MODEL=$M7 GPU_RECORD_DIR=$L/gpu-tests PLAYGROUND_APP_LOG=$L/app-gpu-tests.log \
          timeout 400 python3 -m pytest tests/gpu -m gpu -q -p no:cacheprovider 2>&1 | tail -15 ) > $L/gpu3c.txt 2>&1 &
      wait
    ) > $L/gpu23c.txt 2>&1 &
    wait
    for f in gpu0c gpu1c gpu23c gpu2c gpu3c; do echo "######## $f"; grep -vE "^\s*$" $L/$f.txt | cut -c1-400 | tail -40; done ;;
  d)  # the GPU tests again (fixed for H200: the detected GPU, not the H100 preset) ∥ the 256-user burst from 4 processes
    install; mk llama-2-7b
    ( CUDA_VISIBLE_DEVICES=0 PLAYGROUND_GPU_MODEL=$M7 GPU_RECORD_DIR=$L/gpu-tests PLAYGROUND_APP_LOG=$L/app-gpu-tests.log \
        timeout 400 python3 -m pytest tests/gpu -m gpu -q -p no:cacheprovider 2>&1 | tail -15 ) > $L/gpu0d.txt 2>&1 &
    (
      export CUDA_VISIBLE_DEVICES=1
      python3 benchmarks/web_startup.py --port 7860 --log $L/app-cold.log --json $L/startup-cold.json --keep --pidfile /tmp/app0.pid -- \
        --backend vllm --model $M7 --load-format dummy --load-test --data-dir /tmp/appdata
      python3 benchmarks/web_load.py --url http://127.0.0.1:7860/ --users 64,256 --api generate,compare --processes 4 \
        --max-tokens 128 --json $L/web-inproc-4proc.json
      stopapp /tmp/app0.pid
    ) > $L/gpu1d.txt 2>&1 &
    wait; for f in gpu0d gpu1d; do echo "######## $f"; grep -vE "^\s*$" $L/$f.txt | cut -c1-400 | tail -30; done ;;
esac
tar czf $OUT/round4-$1.tgz -C $OUT logs && rm -rf $L
