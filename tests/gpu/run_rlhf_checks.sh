#!/usr/bin/env bash
# Reward modelling, DPO and PPO with LoRA on a 0.52B random Llama-shaped model (issue 4), on the device machine
# from the repo root with .whl carried (as tests/gpu/run_sft_checks.sh). DPO and the second PPO run go through the
# `deepspeed` launcher with ZeRO-2. Logs and results go to $OUT; a summary line per run is printed.
#   bash tests/gpu/run_rlhf_checks.sh          (STEPS_RM, STEPS_DPO, STEPS_PPO to change the lengths)
set -uo pipefail
. tests/gpu/device_env.sh || exit 1
OUT=${OUT:-/tmp/rlhf_gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft, deepspeed, trl, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'accelerate', accelerate.__version__, 'deepspeed', deepspeed.__version__)" | tee "$OUT/versions.txt"
python3 scripts/build_tiny_models.py --archs llama > /dev/null 2>&1 || exit 1

MODEL=/tmp/llama-0.5b
python3 tests/gpu/build_random_llama.py $MODEL || exit 1

summary() {  # name, rc, results file: one line with the figures that matter
  python3 - "$@" <<'PY'
import json, sys
name, rc, path = sys.argv[1:4]
try:
    data = json.load(open(path))
except OSError:
    data = {}
keep = ("eval_accuracy", "eval_margin", "eval_loss", "eval_rewards/margins", "eval_rewards/accuracies",
        "train_runtime", "train_samples_per_second", "peak_gpu_memory_gib", "train_step_seconds_median",
        "first_score", "last_score", "last_kl", "step_seconds_median", "rollout_seconds_median", "ppo_steps")
print(f"{name}: rc={rc}", {k: round(v, 4) for k, v in data.items() if k in keep and isinstance(v, (int, float))})
PY
}
ds="python3 /tmp/site/bin/deepspeed --num_gpus=1"
LORA="--use_lora true --lora_target_modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --lora_r 16 --lora_alpha 32"
PAIRS="--data_path data_dir/sample_preference.json --cutoff_len 512 --template belle"

python3 scripts/train_rm.py --model_name_or_path $MODEL $LORA $PAIRS --output_dir /tmp/rm \
  --per_device_train_batch_size 8 --batch_size 8 --max_steps ${STEPS_RM:-40} --learning_rate 1e-4 \
  --val_set_size 24 --eval_steps 1000 --logging_steps 5 > "$OUT/rm.log" 2>&1
summary "RM LoRA" $? /tmp/rm/all_results.json

$ds scripts/train_dpo.py --model_name_or_path $MODEL $LORA $PAIRS --output_dir /tmp/dpo \
  --deepspeed run_config/tiny/deepspeed_config.json --per_device_train_batch_size 8 --batch_size 8 \
  --max_steps ${STEPS_DPO:-40} --learning_rate 1e-4 --val_set_size 24 --eval_steps 1000 --logging_steps 5 \
  > "$OUT/dpo_zero2.log" 2>&1
summary "DPO LoRA, deepspeed ZeRO-2" $? /tmp/dpo/all_results.json

PPO="--model_name_or_path $MODEL --reward_model /tmp/rm $LORA --data_path data_dir/sample_sft.train.json \
  --max_prompt_len 256 --max_new_tokens 128 --rollout_batch_size 32 --mini_batch_size 8 --ppo_epochs 2 \
  --learning_rate 1e-5 --logging_steps 1 --save_steps 1000"
python3 scripts/train_ppo.py $PPO --max_steps ${STEPS_PPO:-10} --output_dir /tmp/ppo > "$OUT/ppo.log" 2>&1
summary "PPO LoRA" $? /tmp/ppo/ppo_results.json
$ds scripts/train_ppo.py $PPO --max_steps 4 --deepspeed run_config/tiny/deepspeed_config.json \
  --output_dir /tmp/ppo-zero2 > "$OUT/ppo_zero2.log" 2>&1
summary "PPO LoRA, deepspeed ZeRO-2" $? /tmp/ppo-zero2/ppo_results.json

for run in rm dpo ppo ppo-zero2; do
  mkdir -p "$OUT/$run" && cp /tmp/$run/*.json /tmp/$run/*.jsonl /tmp/$run/*.png "$OUT/$run/" 2>/dev/null
done
grep -h "step [0-9]*/" "$OUT/ppo.log" | sed 's/.*INFO train_ppo: //' | tail -12
