#!/usr/bin/env bash
# Train the demo deer detector on a GPU box: models/deer_detector_demo.pt plus its metrics
# (models/deer_detector_demo.json, whose "readme_line" goes into models/README.md).
#
# Run from anywhere inside the repository on a machine with python3, torch (CUDA), numpy, pillow
# and ultralytics; Dagster, PostgreSQL and the network are not needed. On one H100 with 16 cores
# expect about 3-4 minutes: data ~20 s, training 50 epochs ~2.5-3 min (hard cap MAX_MINUTES),
# evaluations ~20 s. Environment overrides: PYTHON, WORK, TRAIN_IMAGES, HELDOUT_IMAGES, EPOCHS,
# MAX_MINUTES, DEVICE, AMP, BATCH, GEN_WORKERS, LOADER_WORKERS, MODEL_OUT (DEVICE=cpu with tiny
# numbers and MODEL_OUT elsewhere is a smoke test). When $OUT is set (e.g. by a remote runner),
# the weights and metrics are copied there.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
WORK="${WORK:-/tmp/deer_detector_gpu}"
TRAIN_IMAGES="${TRAIN_IMAGES:-3000}"
HELDOUT_IMAGES="${HELDOUT_IMAGES:-400}"
EPOCHS="${EPOCHS:-50}"
MAX_MINUTES="${MAX_MINUTES:-4}"
DEVICE="${DEVICE:-0}"
AMP="${AMP:-auto}"  # auto = bf16 on CUDA; AMP=fp32 if bf16 misbehaves
BATCH="${BATCH:-64}"
GEN_WORKERS="${GEN_WORKERS:-16}"
LOADER_WORKERS="${LOADER_WORKERS:-12}"
MODEL_OUT="${MODEL_OUT:-models/deer_detector_demo.pt}"
METRICS="${MODEL_OUT%.pt}.json"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export YOLO_OFFLINE=1  # ultralytics: no DNS probe, no downloads, no analytics
CMD=("$PY" -m deer_workshop.synthetic.commands)
start=$SECONDS

rm -rf "$WORK"
mkdir -p "$WORK" "$(dirname "$MODEL_OUT")"
"$PY" -c "import sys, torch, ultralytics; cuda = torch.cuda.is_available(); \
assert cuda or sys.argv[1] == 'cpu', 'no CUDA device'; \
print('torch', torch.__version__, 'ultralytics', ultralytics.__version__, \
torch.cuda.get_device_name(0) if cuda else 'cpu')" "$DEVICE"

"${CMD[@]}" demo-data "$WORK/train" --images "$TRAIN_IMAGES" --locations 7 --seed 101 \
    --width 1280 --height 720 --workers "$GEN_WORKERS" | tail -n 2
"${CMD[@]}" demo-data "$WORK/heldout" --images "$HELDOUT_IMAGES" --locations 7 --seed 202 \
    --width 1280 --height 720 --workers "$GEN_WORKERS" | tail -n 2
echo "data ready after $((SECONDS - start)) s"

"${CMD[@]}" train-detector "$WORK/train" --epochs "$EPOCHS" --batch "$BATCH" --imgsz 640 \
    --workers "$LOADER_WORKERS" --device "$DEVICE" --amp "$AMP" --cache ram \
    --max-minutes "$MAX_MINUTES" --val-data "$WORK/heldout" --out "$MODEL_OUT" \
    --work-dir "$WORK/runs" \
    2>&1 | tee "$WORK/train.log" | grep -v "━" | tail -n 40

ls -l "$MODEL_OUT" "$METRICS"
if [[ -n "${OUT:-}" ]]; then
    cp "$MODEL_OUT" "$METRICS" "$OUT"/
    tail -n 200 "$WORK/train.log" > "$OUT/train_tail.log"
fi
echo "total $((SECONDS - start)) s"
