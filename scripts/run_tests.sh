#!/usr/bin/env bash
# The test suite on CPU, set-up included: bash scripts/run_tests.sh [extra pytest arguments]
# CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline
# One compute thread per process: two workers on two cores already fill the machine, and torch's OpenMP
# threads spinning against each other made tiny-model runs many times slower under that load.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ruff check .
# Two workers (the CI machine has 2 cores), each running whole test files: a file's module fixtures and its
# launcher runs (torchrun, deepspeed on their default port) stay on one worker. PYTEST_WORKERS=0 runs serially.
python -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
