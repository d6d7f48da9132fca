# Sourced by the device scripts of tests/gpu/ (from the repo root, .whl carried): installs the wheels the GPU
# image lacks into /tmp/site, puts them on the paths, and sets the GPU README's settings.
#   . tests/gpu/device_env.sh || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || return 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
