#!/usr/bin/env bash
# KTO, ORPO, SimPO and GRPO with LoRA on the 0.52B random Llama-shaped model of run_rlhf_checks.sh (issue 15), on the
# device machine from the repo root with .whl carried (as tests/gpu/run_sft_checks.sh). GRPO and ORPO also run under
# the `deepspeed` launcher with ZeRO-2. Logs and results go to $OUT; one summary line per run: seconds per optimizer
# step, peak GPU memory, and the method's own figures.
#   bash tests/gpu/run_align_checks.sh          (STEPS to change the preference runs' length, GRPO_STEPS GRPO's)
set -uo pipefail
. tests/gpu/device_env.sh || exit 1
OUT=${OUT:-/tmp/align_gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft, deepspeed, trl, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'accelerate', accelerate.__version__, 'deepspeed', deepspeed.__version__)" | tee "$OUT/versions.txt"
python3 scripts/build_tiny_models.py --archs llama > /dev/null 2>&1 || exit 1

MODEL=/tmp/llama-0.5b
[ -f $MODEL/config.json ] || python3 tests/gpu/build_random_llama.py $MODEL || exit 1

summary() {  # name, rc, run folder: one line with seconds per step, peak memory and the method's figures
  python3 - "$@" <<'PY'
import json, statistics, sys
from pathlib import Path
name, rc, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
try:
    results = json.loads((folder / "all_results.json").read_text())
except (OSError, ValueError):
    results = {}
figures = {}
steps = results.get("train_steps_whole_run")
if steps and results.get("train_runtime"):
    figures["s_per_step"] = results["train_runtime"] / steps
for key in ("peak_gpu_memory_gib", "train_loss", "eval_loss", "eval_rewards/margins", "eval_rewards/accuracies"):
    if isinstance(results.get(key), (int, float)):
        figures[key] = results[key]
log = folder / "grpo_log.jsonl"
if log.is_file():
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    figures |= {"grpo_step_s_median": statistics.median(e["step_time"] for e in entries if "step_time" in e),
                "reward_first": entries[0]["reward"], "reward_last": entries[-1]["reward"],
                "kl_last": entries[-1].get("kl"), "completion_len_last": entries[-1]["completions/mean_length"]}
print(f"{name}: rc={rc}", {k: round(v, 4) for k, v in figures.items() if isinstance(v, (int, float))})
PY
}
ds="python3 /tmp/site/bin/deepspeed --num_gpus=1"
ZERO2="--deepspeed run_config/tiny/deepspeed_config.json"
LORA="--use_lora true --lora_target_modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --lora_r 16 --lora_alpha 32"
PAIRS="--model_name_or_path $MODEL $LORA --data_path data_dir/sample_preference.json --cutoff_len 512 --template belle \
  --per_device_train_batch_size 8 --batch_size 8 --per_device_eval_batch_size 8 --learning_rate 1e-4 \
  --val_set_size 24 --eval_steps 1000 --save_steps 1000 --logging_steps 5"

python3 scripts/train_kto.py $PAIRS --max_steps ${STEPS:-20} --output_dir /tmp/kto > "$OUT/kto.log" 2>&1
summary "KTO LoRA" $? /tmp/kto
python3 scripts/train_dpo.py $PAIRS --loss_type orpo --beta 0.1 --max_steps ${STEPS:-20} --output_dir /tmp/orpo \
  > "$OUT/orpo.log" 2>&1
summary "ORPO LoRA" $? /tmp/orpo
$ds scripts/train_dpo.py $PAIRS --loss_type orpo --beta 0.1 --max_steps 10 $ZERO2 --output_dir /tmp/orpo-zero2 \
  > "$OUT/orpo_zero2.log" 2>&1
summary "ORPO LoRA, deepspeed ZeRO-2" $? /tmp/orpo-zero2
python3 scripts/train_dpo.py $PAIRS --loss_type simpo --beta 2.0 --simpo_gamma 0.5 --max_steps ${STEPS:-20} \
  --output_dir /tmp/simpo > "$OUT/simpo.log" 2>&1
summary "SimPO LoRA" $? /tmp/simpo

# GRPO: 4 prompts x 8 completions per optimizer step (2 micro-batches of 16), 128 new tokens, KL to the base.
GRPO="--model_name_or_path $MODEL $LORA --data_path data_dir/sample_math.json --template belle \
  --reward_funcs exact_answer,answer_format,length_penalty --reward_weights 1.0,0.2,0.05 --num_generations 8 \
  --max_new_tokens 128 --batch_size 32 --per_device_train_batch_size 16 --learning_rate 1e-5 --kl_coef 0.04 \
  --logging_steps 1 --save_steps 1000"
python3 scripts/train_grpo.py $GRPO --max_steps ${GRPO_STEPS:-10} --output_dir /tmp/grpo > "$OUT/grpo.log" 2>&1
summary "GRPO LoRA" $? /tmp/grpo
$ds scripts/train_grpo.py $GRPO --max_steps 5 $ZERO2 --output_dir /tmp/grpo-zero2 > "$OUT/grpo_zero2.log" 2>&1
summary "GRPO LoRA, deepspeed ZeRO-2" $? /tmp/grpo-zero2

for run in kto orpo orpo-zero2 simpo grpo grpo-zero2; do
  mkdir -p "$OUT/$run" && cp /tmp/$run/*.json /tmp/$run/*.jsonl /tmp/$run/*.png "$OUT/$run/" 2>/dev/null
done
grep -h "INFO train_grpo: step [0-9]*/" "$OUT/grpo.log" | sed 's/.*INFO train_grpo: //' | tail -5
for log in "$OUT"/*.log; do grep -l "^error:\|Traceback" "$log" && tail -5 "$log"; done
