#!/usr/bin/env bash
# PPO on 2 GPUs of one host (issue 4): torchrun (DDP) and deepspeed ZeRO-2, LoRA on the ~0.52B random
# Llama of tests/gpu/build_random_llama.py, with a reward model trained first on one GPU. On the device
# machine from the repo root with .whl carried; logs and results under $OUT.
set -uo pipefail
. tests/gpu/device_env.sh || exit 1
OUT=${OUT:-/tmp/ppo_multi_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 scripts/build_tiny_models.py --archs llama > /dev/null 2>&1 || exit 1
MODEL=/tmp/llama-0.5b
python3 tests/gpu/build_random_llama.py $MODEL || exit 1
LORA="--use_lora true --lora_target_modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --lora_r 16 --lora_alpha 32"
CUDA_VISIBLE_DEVICES=0 python3 scripts/train_rm.py --model_name_or_path $MODEL $LORA --data_path data_dir/sample_preference.json \
  --output_dir /tmp/rm --per_device_train_batch_size 8 --batch_size 8 --max_steps 20 --learning_rate 1e-4 \
  --val_set_size 24 --eval_steps 1000 > "$OUT/rm.log" 2>&1 || { tail -20 "$OUT/rm.log"; exit 1; }

PPO="scripts/train_ppo.py --model_name_or_path $MODEL --reward_model /tmp/rm $LORA --data_path data_dir/sample_sft.train.json \
  --max_prompt_len 256 --max_new_tokens 128 --rollout_batch_size 32 --mini_batch_size 8 --ppo_epochs 2 \
  --learning_rate 1e-5 --logging_steps 1 --save_steps 3"
torchrun --nproc_per_node=2 $PPO --max_steps 5 --output_dir /tmp/ppo-ddp > "$OUT/ppo_ddp.log" 2>&1
echo "PPO torchrun x2: rc=$? $(cat /tmp/ppo-ddp/ppo_results.json 2>/dev/null | tr -d '\n ')"
python3 /tmp/site/bin/deepspeed --num_gpus=2 $PPO --max_steps 5 --deepspeed run_config/tiny/deepspeed_config.json \
  --output_dir /tmp/ppo-zero2 > "$OUT/ppo_zero2.log" 2>&1
echo "PPO deepspeed ZeRO-2 x2: rc=$? $(cat /tmp/ppo-zero2/ppo_results.json 2>/dev/null | tr -d '\n ')"
# resume the ZeRO-2 run from its step-3 checkpoint: the two last steps must come out the same
mkdir -p /tmp/ppo-zero2-resumed && cp -r /tmp/ppo-zero2/checkpoint-3 /tmp/ppo-zero2-resumed/
python3 /tmp/site/bin/deepspeed --num_gpus=2 $PPO --max_steps 5 --deepspeed run_config/tiny/deepspeed_config.json \
  --output_dir /tmp/ppo-zero2-resumed --resume_from_checkpoint true > "$OUT/ppo_zero2_resume.log" 2>&1
echo "PPO deepspeed ZeRO-2 x2 resumed at step 3: rc=$?"
python3 - <<'PY'
import json
a = [json.loads(l)["objective/score"] for l in open("/tmp/ppo-zero2/ppo_log.jsonl")]
b = [json.loads(l)["objective/score"] for l in open("/tmp/ppo-zero2-resumed/ppo_log.jsonl")]
print("scores uninterrupted:", [round(x, 4) for x in a]); print("scores resumed:      ", [round(x, 4) for x in b])
PY
grep -h "accelerate:\|per device" "$OUT"/ppo_*.log | sed 's/.*INFO train_ppo: //' | sort | uniq
for run in ppo-ddp ppo-zero2; do mkdir -p "$OUT/$run"; cp /tmp/$run/ppo_log.jsonl /tmp/$run/ppo_results.json "$OUT/$run/" 2>/dev/null; done
