#!/usr/bin/env bash
# GPU check of the vision stack on a bare GPU box (Python 3.12, torch, torchvision, OpenCV, Pillow;
# no Dagster, no database): the CUDA tests (deer_pipeline_tests/test_cuda.py: boxes against
# ultralytics' predict on the GPU, fp16/bf16 embeddings against fp32, the streaming GPU path), then
# in one run decode-only, model-only and end-to-end images/s on synthetic 1920x1080 JPEGs with the
# ratios (e2e / model-only and e2e / min(decode-only, model-only)).
# Needs the carried wheels in .whl/ (ultralytics, ultralytics-thop), fetched here with:
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl ultralytics==8.4.190 ultralytics-thop==2.2.3
# Usage, from the repo root: bash scripts/gpu_check.sh [BENCH_IMAGES]   (default 2000)
# Output that must come back from a lent machine goes to $OUT when it is set (a few small files).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
log=${OUT:-/tmp}/gpu_check.log
exec > >(tee "$log") 2>&1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
python3 -c "import sys, torch, torchvision, ultralytics; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'torchvision', torchvision.__version__, 'ultralytics', \
ultralytics.__version__, 'cuda', torch.cuda.is_available())"
start=$SECONDS
tests=0
python3 -m pytest -q -p no:cacheprovider -s deer_pipeline_tests/test_cuda.py || tests=$?
echo "cuda tests: $((SECONDS - start)) s, exit $tests"
start=$SECONDS
python3 -m deer_pipeline.vision.bench --images "${1:-2000}" --out /tmp/deer-bench \
    | tee /tmp/deer-bench.jsonl
echo "benchmark: $((SECONDS - start)) s"
tail -n 1 /tmp/deer-bench.jsonl | python3 -c "import json, sys; s = json.load(sys.stdin); print(
    f\"decode-only {s['decode_only_images_per_s']} img/s, model-only {s['model_only_images_per_s']}\"
    f\" img/s, end-to-end {s['e2e_images_per_s']} img/s; e2e/model-only {s['e2e_over_model_only']},\"
    f\" e2e/min(decode, model) {s['e2e_over_min_decode_model']} on {s['device']}\")"
exit "$tests"
