#!/usr/bin/env bash
# One-time set-up on a fresh machine, safe to re-run (each step is skipped when already done):
#   1. a virtual environment .venv with the pins of requirements.txt (VENV=path to put it elsewhere);
#   2. the Jupyter kernel "belle-finetune" that papermill runs the notebooks with;
#   3. the embedded tiny models and tokenizer in models/ (scripts/build_tiny_models.py).
# Needs python3.11 and pip, and no GPU or hub access. Usage: bash scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv"
  python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

# Re-install only when requirements.txt changed since the last successful install.
stamp="$venv/.installed-$(sha256sum requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing the pinned packages (a few minutes the first time)"
  python -m pip install -q -U pip
  # DeepSpeed is a source package that must see the installed torch while it builds, so it goes last
  # and without build isolation; DS_BUILD_OPS=0 compiles its ops on first use instead of now.
  grep -v '^deepspeed' requirements.txt > "$venv/requirements-no-deepspeed.txt"
  python -m pip install -q -r "$venv/requirements-no-deepspeed.txt"
  DS_BUILD_OPS=0 python -m pip install -q --no-build-isolation "$(grep '^deepspeed' requirements.txt)"
  python -m pip check
  touch "$stamp"
else
  echo "[setup] packages already installed in $venv"
fi
# Registered on every run (it is cheap): the kernel must point at this environment's python, also when
# another clone registered the same name before.
python -m ipykernel install --user --name belle-finetune --display-name "belle-finetune ($(pwd)/$venv)" > /dev/null

python scripts/build_tiny_models.py
echo "[setup] done: activate with '. $venv/bin/activate'"
