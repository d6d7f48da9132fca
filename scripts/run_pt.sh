#!/usr/bin/env bash
# Continued pre-training (Chinese-LLaMA-Alpaca "Pre-training Stage 2"): LoRA + trainable embeddings/head,
# launched with torchrun and DeepSpeed ZeRO-2. Edit the block below, or override any variable from the
# environment:
#
#     bash scripts/run_pt.sh                                   # tiny model, shipped corpus, CPU
#     NPROC=2 bash scripts/run_pt.sh                           # 2 GPUs, ZeRO-2
#     pretrained_model=path/llama chinese_tokenizer_path=path/zh-tok output_dir=out NPROC=8 bash scripts/run_pt.sh
#     OVERWRITE=1 bash scripts/run_pt.sh                       # write over an existing output_dir
#     RESUME=true bash scripts/run_pt.sh                       # continue from the newest checkpoint
#     save_steps=500 training_steps=10000 bash scripts/run_pt.sh  # checkpoint interval (default: 3 per run)
#     dataset=wiki_demo,c4_demo dataset_dir=data bash scripts/run_pt.sh  # registered names in data/dataset_info.json
#
# One node: one process runs pretrain.py directly, several run under `torchrun --standalone`, which picks a
# free port, so two runs on one machine never collide. An error is pretrain.py's one `error:` line; torchrun's
# own traceback after a failed worker is left out.
#
# Multi-node (run on every node, NODE_RANK 0..NNODES-1, MASTER_ADDR = node 0's address):
#     NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 NPROC=8 bash scripts/run_pt.sh
#   which runs: torchrun --nnodes 2 --node_rank 0 --master_addr 10.0.0.1 --master_port 29500 \
#               --nproc_per_node 8 scripts/pretrain.py ...
set -euo pipefail
cd "$(dirname "$0")/.."

lr=${lr:-2e-3}  # tiny-model default; Chinese-LLaMA-Alpaca uses 2e-4 for 7B
lora_rank=${lora_rank:-8}
lora_alpha=${lora_alpha:-32}
lora_trainable=${lora_trainable:-q_proj,v_proj,k_proj,o_proj,gate_proj,down_proj,up_proj}
modules_to_save=${modules_to_save:-embed_tokens,lm_head}
lora_dropout=${lora_dropout:-0.05}
pretrained_model=${pretrained_model:-models/tiny-llama}
chinese_tokenizer_path=${chinese_tokenizer_path:-models/tiny-llama}
dataset_dir=${dataset_dir:-data_dir/pretrain}
data_cache=${data_cache:-.cache/pt_blocks}
per_device_train_batch_size=${per_device_train_batch_size:-2}
gradient_accumulation_steps=${gradient_accumulation_steps:-1}
training_steps=${training_steps:-30}
block_size=${block_size:-64}
output_dir=${output_dir:-trained_models/pt-tiny-llama}
save_steps=${save_steps:-$(( (training_steps + 2) / 3 ))}  # three checkpoints a run unless told otherwise
deepspeed_config_file=${deepspeed_config_file:-run_config/deepspeed_config.json}

NPROC=${NPROC:-1}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python
extra=()
[ "${OVERWRITE:-0}" = 1 ] && extra+=(--overwrite_output_dir true)
[ -n "${RESUME:-}" ] && extra+=(--resume_from_checkpoint "$RESUME")
[ -n "${dataset:-}" ] && extra+=(--dataset "$dataset")  # names in $dataset_dir/dataset_info.json, not every file

if [ "$NNODES" = 1 ] && [ -z "${MASTER_ADDR:-}" ]; then
  if [ "$NPROC" = 1 ]; then
    # One process: the distributed environment DeepSpeed expects, on a port the OS says is free.
    port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    launch=(env RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$PYTHON")
  else
    launch=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC")
  fi
else
  launch=("$PYTHON" -m torch.distributed.run --nnodes "$NNODES" --node_rank "$NODE_RANK"
          --master_addr "${MASTER_ADDR:?set MASTER_ADDR (node 0) for a multi-node run}" --master_port "${MASTER_PORT:-29500}"
          --nproc_per_node "$NPROC")
fi

# torchrun ends a failed run with its own traceback and a "Failures:" banner after the worker's error line;
# they are dropped (a worker's own traceback, from a real crash, is kept).
drop_launcher_traceback() {
  awk '/^Traceback \(most recent call last\):/ { held = $0; next }
       held != "" { if ($0 ~ /torch\/distributed\/(run|elastic|launcher)/) { skip = 1 } else { print held }; held = "" }
       !skip { print }'
}
set +e
"${launch[@]}" \
    scripts/pretrain.py \
    --deepspeed "$deepspeed_config_file" \
    --model_name_or_path "$pretrained_model" \
    --tokenizer_name_or_path "$chinese_tokenizer_path" \
    --dataset_dir "$dataset_dir" \
    --data_cache_dir "$data_cache" \
    --validation_split_percentage 5 \
    --per_device_train_batch_size "$per_device_train_batch_size" \
    --per_device_eval_batch_size "$per_device_train_batch_size" \
    --gradient_accumulation_steps "$gradient_accumulation_steps" \
    --max_steps "$training_steps" \
    --block_size "$block_size" \
    --learning_rate "$lr" \
    --warmup_steps 2 \
    --logging_steps 5 \
    --save_steps "$save_steps" \
    --seed 42 \
    --use_lora true \
    --lora_r "$lora_rank" \
    --lora_alpha "$lora_alpha" \
    --lora_dropout "$lora_dropout" \
    --lora_target_modules "$lora_trainable" \
    --modules_to_save "$modules_to_save" \
    --output_dir "$output_dir" \
    "${extra[@]}" 2> >(drop_launcher_traceback >&2)
status=$?
wait
exit $status
