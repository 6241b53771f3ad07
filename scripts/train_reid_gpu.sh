#!/usr/bin/env bash
# Train the re-ID backbone (ResNet50 from scratch, metric learning on synthetic individuals) on a
# GPU box and write the result under $OUT (default ./reid_out):
#   deer_reid_resnet50.pt.part0..3   the fp16 state_dict in parts of at most 15 MiB
#   deer_reid_resnet50.json          held-out metrics, chosen match threshold, SHA-256 of the weights
#   train_reid.log                   the console log
# Then, on the project machine:
#   python -m deer_workshop.reid_training.train join <folder with the parts> models/deer_reid_resnet50.pt
# which checks the SHA-256 and puts deer_reid_resnet50.json (the threshold) next to the weights.
#
# Needs only Python with torch, torchvision, numpy and Pillow (no Dagster, psycopg2, ultralytics).
# Defaults: 6 synthetic worlds of 3,500 images (1280x720, 12 locations: about 490 individuals),
# TRAIN_SECONDS of training (default 180: 70% at 128 px, then 224 px), a held-out world of 1,500
# images. Expected on one H100 or H200 with 16 cores, alone on the GPU: about 1.5 min of worlds and
# crops, the training, under a minute of evaluation: about 4.5-5 minutes in all.
# Extra arguments go to `python -m deer_workshop.reid_training.train run` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-$PWD/reid_out}"
WORK="${WORK:-/tmp/deer_reid_work}"
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" - <<'PYEOF'
import torch, torchvision
print("torch", torch.__version__, "torchvision", torchvision.__version__,
      "cuda", torch.cuda.is_available())
import deer_workshop.reid_training.train, deer_workshop.reid_training.train_eval, deer_workshop.synthetic  # noqa
import deer_pipeline.vision.embedder  # noqa: fail fast on a missing module
PYEOF
"$PY" -m deer_workshop.reid_training.train run --out "$OUT" --work "$WORK" --workers "${WORKERS:-16}" \
    --train-seconds "${TRAIN_SECONDS:-180}" "$@" 2>&1 | tee "$OUT/train_reid.log"
ls -l "$OUT"
