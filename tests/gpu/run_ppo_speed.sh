#!/usr/bin/env bash
# PPO step time (issue 14's target: at least 2x faster than the 7.2 s a step of tests/gpu/run_rlhf_checks.sh's
# PPO run) on one GPU: the same PPO run once per row of DECODES, in one call:
#   static        the engine's static, compiled batch (what it picks on a GPU), as train_ppo.py runs;
#   static_cudnn  the same with cuDNN's attention left on (before common.modeling.avoid_cudnn_attention);
#   dynamic       the engine's growing, uncompiled batch.
# The reward model is a short LoRA run: only its shape matters here. Every run goes through
# tests/gpu/ppo_phases.py, which prints each step's phases on a synchronised clock and profiles one step.
# Run from the repo root with .whl carried; logs in $OUT.
#   bash tests/gpu/run_ppo_speed.sh   (STEPS_PPO, default 8; DECODES, default "static dynamic";
#                                      PROFILE_AT_STEP, 0-based, default the last step)
set -uo pipefail
: "${OUT:?set OUT to the results folder}"
. tests/gpu/device_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 scripts/build_tiny_models.py --archs llama > /dev/null 2>&1 || exit 1
MODEL=/tmp/llama-0.5b
python3 tests/gpu/build_random_llama.py $MODEL > /dev/null || exit 1
LORA="--use_lora true --lora_target_modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --lora_r 16 --lora_alpha 32"
python3 scripts/train_rm.py --model_name_or_path $MODEL $LORA --data_path data_dir/sample_preference.json \
  --cutoff_len 512 --template belle --output_dir /tmp/rm --per_device_train_batch_size 8 --batch_size 8 \
  --max_steps 5 --learning_rate 1e-4 --val_set_size 0 > "$OUT/rm.log" 2>&1 || { tail -20 "$OUT/rm.log"; exit 1; }
PPO="--model_name_or_path $MODEL --reward_model /tmp/rm $LORA --data_path data_dir/sample_sft.train.json \
  --max_prompt_len 256 --max_new_tokens 128 --rollout_batch_size 32 --mini_batch_size 8 --ppo_epochs 2 \
  --learning_rate 1e-5 --logging_steps 1 --save_steps 1000 --max_steps ${STEPS_PPO:-8}"
for decode in ${DECODES:-static dynamic}; do
  launcher=tests/gpu/ppo_phases.py; [ $decode = dynamic ] && launcher="$launcher --dynamic"
  cudnn=0; [ $decode = static_cudnn ] && cudnn=1
  start=$(date +%s)
  SDPA_CUDNN=$cudnn PROFILE_AT_STEP=${PROFILE_AT_STEP:-$(( ${STEPS_PPO:-8} - 1 ))} python3 $launcher scripts/train_ppo.py $PPO --output_dir /tmp/ppo-$decode > "$OUT/ppo_$decode.log" 2>&1
  rc=$?
  python3 - "$decode" "$rc" "$(( $(date +%s) - start ))" /tmp/ppo-$decode/ppo_results.json <<'PY'
import json, sys
decode, rc, wall, path = sys.argv[1:5]
try:
    data = json.load(open(path))
except OSError:
    data = {}
keep = ("step_seconds_median", "rollout_seconds_median", "ppo_steps", "first_score", "last_score", "last_kl",
        "peak_gpu_memory_gib")
print(json.dumps({"decode": decode, "rc": int(rc), "wall_seconds": int(wall),
                  **{k: data[k] for k in keep if k in data}}))
PY
  [ $rc = 0 ] || tail -15 "$OUT/ppo_$decode.log"
done | tee "$OUT/ppo_speed.jsonl"
for decode in ${DECODES:-static dynamic}; do
  echo "== $decode"; grep -h "^phases step\|^median seconds" "$OUT/ppo_$decode.log"
done
