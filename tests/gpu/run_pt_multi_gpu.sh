#!/usr/bin/env bash
# Continued pre-training on 2 GPUs of one host with DeepSpeed ZeRO-2 (issue 6). Run on the device machine from
# the repo root with .whl carried (as tests/gpu/run_sft_checks.sh): prints tokens/s and peak memory per GPU.
#   NPROC=2 bash tests/gpu/run_pt_multi_gpu.sh      (outputs under $OUT)
set -uo pipefail
. tests/gpu/device_env.sh || exit 1
export PYTHON=python3
OUT=${OUT:-/tmp/pt_gpu_out}; mkdir -p "$OUT"
python3 -c "import deepspeed; print('deepspeed', deepspeed.__version__)" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 scripts/build_tiny_models.py --archs llama > /dev/null 2>&1 || exit 1
python3 scripts/merge_tokenizer.py --output_dir /tmp/zh-tok --overwrite > "$OUT/merge_tokenizer.log" 2>&1 || exit 1
NPROC=${NPROC:-2} output_dir=/tmp/pt-zero2 OVERWRITE=1 training_steps=${training_steps:-100} block_size=256 \
  per_device_train_batch_size=8 chinese_tokenizer_path=/tmp/zh-tok data_cache=/tmp/pt-cache \
  bash scripts/run_pt.sh > "$OUT/run_pt.log" 2>&1
rc=$?
echo "run_pt.sh NPROC=${NPROC:-2} ZeRO-2: rc=$rc"
grep -E "peak GPU memory|held-out perplexity|grown" "$OUT/run_pt.log"
python3 -c "import json; m=json.load(open('/tmp/pt-zero2/all_results.json')); print({k: round(v, 4) for k, v in m.items() if k in ('train_loss','train_tokens_per_second','peak_gpu_memory_gib','train_runtime')})"
python3 scripts/merge_lora.py --base_model models/tiny-llama --lora_model /tmp/pt-zero2/pt_lora_model \
  --output_dir /tmp/pt-merged --overwrite > "$OUT/merge.log" 2>&1; echo "merge rc=$? vocab=$(grep vocab_size /tmp/pt-merged/config.json)"
cp /tmp/pt-zero2/*.json /tmp/pt-zero2/*.png "$OUT/" 2>/dev/null
exit $rc
