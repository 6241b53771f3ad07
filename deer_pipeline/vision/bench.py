"""Headless speed check of the vision stack on synthetic frames: decode, models, end to end.

Runs where only torch, torchvision, Pillow, OpenCV and ultralytics are installed (a bare GPU box:
no Dagster, no database). Uses the configured weights when they exist, else untrained ones made on
the spot (speed does not depend on what the weights learned; the number of boxes per image does,
so it is reported). Prints one JSON object per measurement and a summary as the last line.

    python -m deer_pipeline.vision.bench --images 2000 --out /tmp/deer-bench
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from deer_pipeline import config
from deer_pipeline.vision import measure
from deer_pipeline.vision.detector import Detector, DetectorConfig
from deer_pipeline.vision.embedder import Embedder, EmbedderConfig
from deer_pipeline.vision.pipeline import (
    InferencePipeline,
    PipelineConfig,
    default_decode_workers,
)
from deer_pipeline.vision.runtime import device_name


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _models(args: argparse.Namespace, work: Path) -> tuple[Detector, Embedder]:
    """Load the configured weights, or untrained stand-ins (said so in the output)."""
    from deer_pipeline.vision.untrained import save_untrained_backbone, save_untrained_detector

    det_path, conf, max_det = args.detector_weights, 0.25, 300
    if not os.path.isfile(det_path):
        det_path = str(save_untrained_detector(work / "untrained_detector.pt"))
        conf, max_det = 0.05, args.untrained_boxes  # about as many boxes as the synthetic deer
    reid = args.reid_weights
    if reid not in ("imagenet", "random") and not os.path.isfile(reid):
        reid = str(save_untrained_backbone(work / "untrained_backbone.pt"))
    det = Detector(
        DetectorConfig(
            det_path, conf=conf, max_det=max_det, batch_size=args.batch, device=args.device
        )
    )
    emb = Embedder(EmbedderConfig(reid, device=args.device, batch_size=args.embed_batch))
    _emit(
        {
            "stage": "models",
            "detector": det_path,
            "detector_version": det.model_version,
            "reid": reid,
            "reid_version": emb.model_version,
            "device": device_name(det.device),
            "half": det.half,
        }
    )
    return det, emb


def main(argv: list[str] | None = None) -> int:
    """Run the measurements; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--out", default="/tmp/deer-bench")
    parser.add_argument("--device", default=config.device_spec())
    parser.add_argument("--detector-weights", default=config.detector_weights())
    parser.add_argument("--reid-weights", default=config.reid_weights())
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--embed-batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="decode threads")
    parser.add_argument("--model-only-images", type=int, default=256)
    parser.add_argument("--untrained-boxes", type=int, default=2)
    args = parser.parse_args(argv)
    out = Path(args.out)
    workers = args.workers or default_decode_workers()

    from deer_pipeline.plugins import generate_dataset

    data = out / "images"
    if not (data / "ground_truth.json").exists():
        start = time.perf_counter()
        info = generate_dataset(data, args.images, 4, seed=0, width=1920, height=1080)
        _emit(
            {
                "stage": "generate",
                "images": info["images"],
                "boxes": info["boxes"],
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    paths = sorted(data.rglob("*.JPG"))[: args.images]
    det, emb = _models(args, out)
    reid_side = InferencePipeline(det, emb).decode_long_side

    summary: dict = {"images": len(paths), "device": device_name(det.device), "workers": workers}
    for kind in ("thread", "process"):
        for side in (det.config.imgsz, reid_side):
            r = measure.decode_only(paths, side, workers, kind)
            _emit({"stage": "decode-only", "kind": kind, "long_side": side, **r})
            summary[f"decode_only_{kind}_{side}_images_per_s"] = r["images_per_s"]
    r = measure.decode_only(paths[:200], None, 1)
    _emit({"stage": "decode-one-thread", "long_side": "full", **r})
    r = measure.decode_only(paths[:200], det.config.imgsz, 1)
    _emit({"stage": "decode-one-thread", "long_side": det.config.imgsz, **r})

    r = measure.model_only(det, emb, paths[: args.model_only_images], reid_side)
    _emit({"stage": "model-only", **r})
    summary["model_only_images_per_s"] = r["images_per_s"]
    pipe_cfg = dict(batch_size=args.batch, decode_workers=workers)
    for side in (None, det.config.imgsz):
        cfg = PipelineConfig(decode_long_side=side, **pipe_cfg)
        r = measure.end_to_end(det, emb, paths, cfg)
        _emit({"stage": "end-to-end", **r})
        summary[f"e2e_{r['decode_long_side']}_images_per_s"] = r["images_per_s"]
    e2e = summary[f"e2e_{reid_side}_images_per_s"]
    model = summary["model_only_images_per_s"]
    decode = summary[f"decode_only_thread_{reid_side}_images_per_s"]  # the pipeline's decode
    summary["decode_only_images_per_s"] = decode
    summary["e2e_images_per_s"] = e2e
    summary["e2e_over_model_only"] = round(e2e / model, 3)
    summary["e2e_over_min_decode_model"] = round(e2e / min(decode, model), 3)
    _emit({"stage": "summary", **summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
