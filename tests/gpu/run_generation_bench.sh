#!/usr/bin/env bash
# Generation benchmark (issue 14, tests/gpu/bench_generation.py) on one GPU, run on the device machine from the
# repo root with .whl carried (run tool: carry [".whl"]). The server rows need FastAPI and uvicorn, which the GPU
# image lacks; fetch them once per checkout on the CPU machine (bitsandbytes is not needed here: move it out
# of .whl/ to stay under the 64 MiB carried):
#   bash ../shared/gpu/fetch_wheels.sh fastapi==0.163.2 starlette==1.10.0 uvicorn==0.54.0 annotated-doc \
#       opentelemetry-api anyio idna h11 click
# Arguments go to bench_generation.py; results and logs go to $OUT. All rows may take 7-9 minutes on an H200
# (estimated, never run): near the 10-minute limit of one call, so split them over two calls:
#   bash tests/gpu/run_generation_bench.sh --only old_static_8,engine_greedy,generate_py
#   bash tests/gpu/run_generation_bench.sh --only varied_static,varied_engine,api_stream_64,ppo_rollout_32x128
# Where the engine's time goes on varied lengths (phase totals printed, op table in $OUT/profile_varied_engine.txt;
# a window of --profile_steps model forwards after --profile_skip, default 300 after 20: a whole profiled run of
# 128 requests did not finish in 330 s):
#   bash tests/gpu/run_generation_bench.sh --only varied_static,varied_engine --profile varied_engine --varied 128
set -uo pipefail
: "${OUT:?set OUT to the results folder}"
. tests/gpu/device_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import fastapi, uvicorn" || { echo "fastapi/uvicorn missing from .whl/ (see the top of this file)"; exit 1; }
python3 scripts/build_tiny_models.py --archs llama > /dev/null || exit 1   # the tokenizer the benchmark model uses
python3 tests/gpu/bench_generation.py --out "$OUT" "$@"
