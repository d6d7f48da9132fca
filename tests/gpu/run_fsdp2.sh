#!/usr/bin/env bash
# FSDP2 on two GPUs (issue 16), on the device machine nvidia-h200-x2 from the repo root with .whl carried:
# the checks of tests/gpu/fsdp2_checks.py (each stage under FSDP2, one step against one process, resume
# 2 -> 1 -> 2), then with --bench the 1.24 B SFT under plain DDP, ZeRO-2, ZeRO-3 and FSDP2 on every GPU.
#   OUT=$OUT bash tests/gpu/run_fsdp2.sh [--bench] [pytest arguments]
set -uo pipefail
: "${OUT:?set OUT to the results folder}"
. tests/gpu/device_env.sh || exit 1
export WANDB_MODE=offline
bench=0
if [ "${1:-}" = "--bench" ]; then bench=1; shift; fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -p no:cacheprovider -q -rA tests/gpu/fsdp2_checks.py --basetemp /tmp/fsdp2 "$@" 2>&1 \
  | tee "$OUT/fsdp2_checks.txt" | tail -60
if [ $bench = 1 ]; then
  ngpu=$(nvidia-smi -L | wc -l)
  python3 tests/gpu/bench_sft.py --out "$OUT" --skip_baseline --nproc "$ngpu" --only \
    "1b_full_torchrun_${ngpu}gpu,1b_full_deepspeed_zero2_${ngpu}gpu,1b_full_deepspeed_zero3_${ngpu}gpu,1b_full_fsdp2_${ngpu}gpu"
fi
