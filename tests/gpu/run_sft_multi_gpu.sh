#!/usr/bin/env bash
# SFT on 2+ GPUs of one host (issue 2), run on the device machine from the repo root with .whl carried:
#   BELLE's torchrun LoRA command on the tiny config, then the ~1B runs under torchrun and deepspeed on all GPUs.
set -uo pipefail
. tests/gpu/device_env.sh || exit 1
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 scripts/build_tiny_models.py --archs llama,bloom > /dev/null 2>&1 || exit 1
python3 -m torch.distributed.run --nproc_per_node=$ngpu scripts/finetune.py --model_config_file run_config/tiny/Llama_config.json \
    --lora_hyperparams_file run_config/tiny/lora_hyperparams_llama.json --use_lora --output_dir /tmp/tiny-torchrun \
    > "$OUT/tiny_torchrun.log" 2>&1
echo "tiny torchrun lora x$ngpu: rc=$? $(python3 -c "import json; m=json.load(open('/tmp/tiny-torchrun/all_results.json')); print({k: round(v, 4) for k, v in m.items() if k in ('train_loss','eval_loss','train_tokens_per_second','peak_gpu_memory_gib')}, json.load(open('/tmp/tiny-torchrun/finetune_config.json'))['_resolved'])")"
python3 tests/gpu/bench_sft.py --out "$OUT" --skip_baseline --nproc "$ngpu" "$@"
