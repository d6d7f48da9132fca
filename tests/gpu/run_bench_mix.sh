#!/usr/bin/env bash
# TRL packing / plain Trainer / finetune.py side by side on one GPU (tests/gpu/bench_mix.py), run on the
# device machine from the repo root with .whl carried (run tool: carry [".whl"]; bash ../shared/gpu/fetch_wheels.sh
# once per checkout fetches it).
# Arguments go to bench_mix.py; results and logs go to $OUT:
#   bash tests/gpu/run_bench_mix.sh --only trl_packing_flex_full,ours_full --steps 100
set -uo pipefail
: "${OUT:?set OUT to the results folder}"
. tests/gpu/device_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 scripts/build_tiny_models.py --archs llama || exit 1   # the tokenizer the benchmark models use
python3 tests/gpu/bench_mix.py --out "$OUT" "$@"
