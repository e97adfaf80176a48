#!/usr/bin/env bash
# One entry point for the measurements on a GPU host behind docs/results. Run from the project root, after
# vLLM's parts are in /tmp/vw (../shared/gpu/vllm-pack.sh writes them; the device tool's notes say how to send
# them). Each task fits one 10-minute call; results land in $OUT (a summary plus one archive of the logs).
#
#   bash benchmarks/gpu.sh install                     # vLLM (and the app's wheels in .aw/, if carried) into /tmp
#   bash benchmarks/gpu.sh planner-rows NAME...        # one engine start per catalog model (dummy weights, eager,
#                                                      # MAX_MODEL_LEN=8192): vLLM's log and memory beside the plan
#   bash benchmarks/gpu.sh openai-load                 # the app (both engines on one GPU, MODEL=llama-3.1-8b dummy
#                                                      # weights) driven through /v1 by web_load.py and guidellm at
#                                                      # 1/16/64/256 users; needs guidellm's wheels in .gw/ (see
#                                                      # benchmarks/guidellm-wheels.txt) unless guidellm is installed
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:/tmp/appsite:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p "$L" /tmp/models
task=${1:?usage: gpu.sh install|planner-rows NAME...|openai-load}; shift
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
install_guidellm() {
  if [ -d .gw ] && [ ! -d /tmp/appsite/guidellm ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/appsite .gw/*.whl 2>&1 | tail -2
  fi
  python3 -c "import guidellm, prometheus_client, openai; print('guidellm', guidellm.__version__)" 2>&1 | tail -1
}
openai_load() {  # the app on one GPU, /v1 driven by web_load.py (bursts, with the direct baseline) then guidellm
  local dir port=7860 url=http://127.0.0.1:7860 app deadline labels
  dir=$(model_dir "${MODEL:-llama-3.1-8b}")
  setsid python3 app.py --backend vllm --model "$dir" --load-format dummy --load-test --port $port \
    --data-dir /tmp/appdata > "$L/app.log" 2>&1 & app=$!
  deadline=$((SECONDS + ${START_TIMEOUT:-300}))
  until curl -sf $url/v1/models | python3 -c "import json,sys; d=json.load(sys.stdin)['data']; sys.exit(not all(m['settings']['ready'] for m in d))" 2>/dev/null; do
    if [ $SECONDS -gt $deadline ] || ! kill -0 $app 2>/dev/null; then echo "the app did not start"; tail -30 "$L/app.log"; kill -9 -- -$app 2>/dev/null; return 1; fi
    sleep 3
  done
  echo "app ready after $SECONDS s"; curl -s $url/v1/models | python3 -m json.tool | grep -E '"(id|quantization|kv_tokens|gpu_memory_utilization|chat_template)"'
  labels=$(curl -s $url/v1/models | python3 -c "import json,sys; print(' '.join(m['id'] for m in json.load(sys.stdin)['data']))")
  timeout 200 python3 benchmarks/web_load.py --url $url/ --users 1,16,64,256 --api generate --protocol openai \
    --engine FP8 --max-tokens 128 --json "$OUT/web_load_openai.json"
  local fmt=/v1/completions  # dummy-weight folders have no chat template: /v1/completions, as web_load then uses
  for col in $labels; do
    HF_HUB_OFFLINE=1 timeout 150 python3 -m guidellm run --backend "kind=openai_http,target=$url,model=$col,request_format=$fmt" \
      --tokenizer "kind=hf_auto,model=$dir" --profile kind=concurrent,streams=1 --override profile.streams 1,16,64,256 \
      --constraint kind=max_duration,seconds=${GL_SECONDS:-10} --data kind=synthetic_text,prompt_tokens=32,output_tokens=128 \
      --output "kind=json,path=$OUT/guidellm-$col.json" --disable-console-interactive > "$L/guidellm-$col.log" 2>&1
    echo "guidellm $col rc=$?"; grep -A9 "Server Throughput" "$L/guidellm-$col.log" | tail -6
  done
  curl -s $url/metrics | grep -E '^vllm:(generation_tokens_total|request_success_total|num_requests_running)' | head -12
  python3 benchmarks/openai_load.py --web-load "$OUT/web_load_openai.json" --engine FP8 \
    --guidellm $(for col in $labels; do echo "$OUT/guidellm-$col.json"; done) --json "$OUT/openai_load.json"
  kill -- -$app 2>/dev/null; sleep 3; kill -9 -- -$app 2>/dev/null
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
  openai-load)
    install >/dev/null; install_guidellm
    openai_load 2>&1 | tee "$OUT/openai-load.txt" ;;
  *) echo "unknown task $task" >&2; exit 2 ;;
esac
kill $WATCHDOG 2>/dev/null
tar czf "$OUT/$task-logs.tgz" -C "$OUT" logs
