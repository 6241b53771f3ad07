#!/usr/bin/env bash
# GPU check of the vision stack on a bare GPU box (Python 3.12, torch, torchvision, OpenCV, Pillow;
# no Dagster, no database): CUDA tests, then decode-only / model-only / end-to-end images/s on
# synthetic 1920x1080 JPEGs. Needs the carried wheels in .whl/ (ultralytics, ultralytics-thop).
# Usage, from the repo root: bash scripts/gpu_check.sh [BENCH_IMAGES]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
python3 -c "import sys, torch, torchvision, ultralytics; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'torchvision', torchvision.__version__, 'ultralytics', \
ultralytics.__version__, 'cuda', torch.cuda.is_available())"
start=$SECONDS
tests=0
python3 -m pytest -q -p no:cacheprovider deer_pipeline_tests/test_cuda.py || tests=$?
echo "cuda tests: $((SECONDS - start)) s, exit $tests"
start=$SECONDS
python3 -m deer_pipeline.vision.bench --images "${1:-2000}" --out /tmp/deer-bench
echo "benchmark: $((SECONDS - start)) s"
exit "$tests"
