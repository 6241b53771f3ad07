#!/usr/bin/env bash
# Train both project models at once on one GPU box (the detector and the re-ID backbone), from the
# repository root, with ultralytics carried as wheels in .whl/ (see scripts/gpu_check.sh).
#
#   OUT=/some/folder bash scripts/gpu_train_models.sh
#
# Writes to $OUT: deer_detector_demo.pt + .json, reid/deer_reid_resnet50.pt.part* + .json, and
# train.log (both logs). Copies of the weights stay in $KEEP (default /tmp/deer_models) so a later
# command on the same machine (scripts/gpu_check.sh) can use them. On the project machine:
#   cp OUT/deer_detector_demo.* models/
#   python -m deer_workshop.reid_training.train join OUT/reid models/deer_reid_resnet50.pt
set -uo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1
OUT="${OUT:-$PWD/gpu_out}"
KEEP="${KEEP:-/tmp/deer_models}"
mkdir -p "$OUT/reid" "$KEEP/reid"
start=$SECONDS
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

(
    MODEL_OUT="$KEEP/deer_detector_demo.pt" GEN_WORKERS="${DET_GEN_WORKERS:-8}" \
    LOADER_WORKERS="${DET_LOADER_WORKERS:-8}" MAX_MINUTES="${DET_MAX_MINUTES:-4}" \
    EPOCHS="${DET_EPOCHS:-60}" OUT="$OUT" bash scripts/train_detector_gpu.sh
    echo "detector exit $? after $((SECONDS - start)) s"
) > "$KEEP/detector.log" 2>&1 &
(
    OUT="$KEEP/reid" WORKERS="${REID_WORKERS:-8}" TRAIN_SECONDS="${REID_SECONDS:-150}" \
    bash scripts/train_reid_gpu.sh --train-worlds "${REID_WORLDS:-4}"
    echo "reid exit $? after $((SECONDS - start)) s"
) > "$KEEP/reid.log" 2>&1 &
wait

cp "$KEEP"/reid/deer_reid_resnet50.pt.part* "$KEEP"/reid/deer_reid_resnet50.json "$OUT/reid/" 2>/dev/null
{ echo "=== detector"; grep -v "━" "$KEEP/detector.log" | tail -n 120
  echo "=== reid"; tail -n 150 "$KEEP/reid.log"; } > "$OUT/train.log"
rm -f "$OUT/train_tail.log"
grep -E "exit|mAP|map50|rank|precision|recall|threshold|world|total" "$OUT/train.log" | tail -n 60
ls -l "$OUT" "$OUT/reid"
echo "all done after $((SECONDS - start)) s"
