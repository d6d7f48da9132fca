#!/usr/bin/env bash
# The test suite on CPU, set-up included: bash scripts/run_tests.sh [extra pytest arguments]
# CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline
ruff check .
python -m pytest -q "$@"
