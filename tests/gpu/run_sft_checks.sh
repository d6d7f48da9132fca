#!/usr/bin/env bash
# SFT on one GPU (issue 2), run on the device machine from the repo root with .whl carried:
#   tiny configs under the deepspeed launcher (full and LoRA), then the ~1B benchmark (tests/gpu/bench_sft.py).
# Logs and results go to $OUT.
set -uo pipefail
. tests/gpu/device_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft, deepspeed, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'deepspeed', deepspeed.__version__, 'trl', trl.__version__)"
python3 scripts/build_tiny_models.py --archs llama,bloom || exit 1

ds="python3 /tmp/site/bin/deepspeed --num_gpus=1"
for mode in full lora; do
  extra=""; [ $mode = lora ] && extra="--lora_hyperparams_file run_config/tiny/lora_hyperparams_bloom.json --use_lora"
  $ds scripts/finetune.py --model_config_file run_config/tiny/Bloom_config.json $extra \
      --deepspeed run_config/tiny/deepspeed_config.json --output_dir /tmp/tiny-ds-$mode > "$OUT/tiny_ds_$mode.log" 2>&1
  echo "tiny deepspeed $mode: rc=$? $(python3 -c "import json; m=json.load(open('/tmp/tiny-ds-$mode/all_results.json')); print({k: round(v, 4) for k, v in m.items() if k in ('train_loss','eval_loss','train_tokens_per_second','peak_gpu_memory_gib')}, json.load(open('/tmp/tiny-ds-$mode/finetune_config.json'))['_resolved'])")"
done
python3 tests/gpu/bench_sft.py --out "$OUT" "$@"
