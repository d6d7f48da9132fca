#!/usr/bin/env bash
# The whole SFT workflow on the embedded default, offline, on CPU, set-up included:
#   bash scripts/demo.sh
# 1. set-up (venv, pinned packages, tiny models; skipped when done)   2. LoRA SFT of the tiny LLaMA
# on the shipped sample data   3. predictions on the held-out dev file   4. the adapter merged into
# one model   5. metrics and the papermill evaluation report (notebook + HTML). Every run goes to a new folder outputs/demo-<time>/, so nothing earlier is overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

run="outputs/demo-$(date +%Y%m%d-%H%M%S)"
echo "[demo] 1/4 LoRA fine-tuning of models/tiny-llama -> $run/lora"
python scripts/finetune.py --model_config_file run_config/tiny/Llama_config.json \
    --lora_hyperparams_file run_config/tiny/lora_hyperparams_llama.json --use_lora \
    --output_dir "$run/lora"
echo "[demo] 2/4 predictions on data_dir/sample_sft.dev.json -> $run/predictions.jsonl"
python scripts/generate.py --dev_file data_dir/sample_sft.dev.json --model_name_or_path models/tiny-llama \
    --lora_weights "$run/lora" --max_new_tokens 64 --output_file "$run/predictions.jsonl"
echo "[demo] 3/4 merging the adapter -> $run/merged"
python scripts/merge_lora.py --base_model models/tiny-llama --lora_model "$run/lora" --output_dir "$run/merged"
echo "[demo] 4/4 metrics and evaluation report -> $run/report"
python scripts/make_report.py --run_dir "$run/lora" --predictions_file "$run/predictions.jsonl" --output_dir "$run/report"

echo
echo "Demo finished. Outputs are in $(pwd)/$run:"
echo "  lora/               adapter, tokenizer, finetune_config.json, run_manifest.json, checkpoints, metrics"
echo "  predictions.jsonl   one {input, predict, target} line per dev example"
echo "  merged/             base + adapter as one model (safetensors) with its tokenizer"
echo "  metrics.json        BLEU-4 / ROUGE of the predictions"
echo "  report/             eval_report.ipynb and eval_report.html (papermill)"
