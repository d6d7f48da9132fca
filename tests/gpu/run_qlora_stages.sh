#!/usr/bin/env bash
# QLoRA (4-bit NF4 base + LoRA) in every stage but SFT (tests/gpu/bench_mix.py's qlora7b row has SFT), on the
# 0.52B random Llama of tests/gpu/run_rlhf_checks.sh, on the device machine from the repo root with .whl
# carried: pre-training, reward model, DPO and PPO (whose reward model is the QLoRA RM, merged onto its
# full-precision base). Each prints rc, its first/last logged loss (PPO: KL and score a step) and peak GPU memory.
#   OUT=$OUT bash tests/gpu/run_qlora_stages.sh
set -uo pipefail
: "${OUT:?set OUT to the results folder}"
. tests/gpu/device_env.sh || exit 1
python3 scripts/build_tiny_models.py --archs llama > /dev/null 2>&1 || exit 1
MODEL=/tmp/llama-0.5b
[ -d $MODEL ] || python3 tests/gpu/build_random_llama.py $MODEL || exit 1

summary() {  # name, rc, run folder: the first and last logged loss, PPO's KL, the peak memory
  python3 - "$@" <<'PY'
import json, sys
from pathlib import Path
name, rc, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
state = folder / "trainer_state.json"
losses = [e["loss"] for e in json.loads(state.read_text())["log_history"] if "loss" in e] if state.is_file() else []
results = {}
for f in ("all_results.json", "train_results.json", "ppo_results.json"):
    if (folder / f).is_file():
        results |= json.loads((folder / f).read_text())
log = folder / "ppo_log.jsonl"
ppo = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
kl = [round(e["objective/kl"], 4) for e in ppo]
score = [round(e["objective/score"], 3) for e in ppo]
print(f"{name}: rc={rc} losses {losses[:1]}..{losses[-1:]} ({len(losses)} logged) PPO kl {kl} score {score} "
      f"peak_gpu_memory_gib={results.get('peak_gpu_memory_gib')} "
      f"step_s={results.get('train_step_seconds_median', results.get('step_seconds_median'))}")
PY
}
Q="--use_lora true --lora_r 16 --lora_alpha 32 --lora_target_modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --quantization_bit 4 --gradient_checkpointing true"
PAIRS="--data_path data_dir/sample_preference.json --cutoff_len 512 --template belle"
COMMON="--logging_steps 2 --save_steps 1000 --report_to none"

python3 scripts/pretrain.py --model_name_or_path $MODEL $Q $COMMON --dataset_dir data_dir/pretrain --block_size 512 \
  --per_device_train_batch_size 8 --max_steps 30 --learning_rate 2e-4 --output_dir /tmp/q-pt > "$OUT/q_pt.log" 2>&1
summary "pre-training QLoRA" $? /tmp/q-pt
python3 scripts/train_rm.py --model_name_or_path $MODEL $Q $PAIRS $COMMON --output_dir /tmp/q-rm \
  --per_device_train_batch_size 8 --batch_size 8 --max_steps 30 --learning_rate 2e-4 --val_set_size 24 \
  --eval_steps 1000 > "$OUT/q_rm.log" 2>&1
summary "RM QLoRA" $? /tmp/q-rm
python3 scripts/train_dpo.py --model_name_or_path $MODEL $Q $PAIRS $COMMON --output_dir /tmp/q-dpo \
  --per_device_train_batch_size 8 --batch_size 8 --max_steps 30 --learning_rate 2e-4 --val_set_size 24 \
  --eval_steps 1000 > "$OUT/q_dpo.log" 2>&1
summary "DPO QLoRA" $? /tmp/q-dpo
python3 scripts/train_ppo.py --model_name_or_path $MODEL --reward_model /tmp/q-rm $Q --report_to none \
  --data_path data_dir/sample_sft.train.json --max_prompt_len 256 --max_new_tokens 128 --rollout_batch_size 32 \
  --mini_batch_size 8 --ppo_epochs 2 --learning_rate 1e-5 --logging_steps 1 --save_steps 1000 --max_steps 6 \
  --output_dir /tmp/q-ppo > "$OUT/q_ppo.log" 2>&1
summary "PPO QLoRA" $? /tmp/q-ppo
grep -h "quantised to 4 bits\|error:" "$OUT"/q_*.log | sort | uniq -c
for run in q-pt q-rm q-dpo q-ppo; do
  mkdir -p "$OUT/$run" && cp /tmp/$run/*.json /tmp/$run/*.jsonl "$OUT/$run/" 2>/dev/null
done
