#!/usr/bin/env bash
# TRL packing / plain Trainer / finetune.py side by side on one GPU (tests/gpu/bench_mix.py), run on the
# device machine from the repo root with .whl carried (run tool: carry [".whl"]; bash ../shared/gpu/fetch_wheels.sh
# once per checkout fetches it).
# Arguments go to bench_mix.py; results and logs go to $OUT:
#   bash tests/gpu/run_bench_mix.sh --only trl_packing_flex_full,ours_full --steps 100
set -uo pipefail
: "${OUT:?set OUT to the results folder}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH || exit 1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 scripts/build_tiny_models.py --archs llama || exit 1   # the tokenizer the benchmark models use
python3 tests/gpu/bench_mix.py --out "$OUT" "$@"
