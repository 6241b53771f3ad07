"""Train the demo deer detector (YOLOv8n from scratch) on synthetic data, and measure mAP.

No weights can be downloaded, so the detector starts from the architecture file ``yolov8n.yaml``
and learns doe / fawn / buck from the synthetic world. ultralytics is made strictly offline
before it is imported: ``YOLO_OFFLINE``, no settings sync, no plots (they fetch a font), no AMP
check (it downloads a model: CUDA trains in bf16, which ultralytics runs without that check), and
the dataset check's font download is skipped. ``evaluate_map`` scores any weights file on a
generated dataset; ``ci_holdout_map50`` is the fixed protocol behind the value in models/README.md.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from deer_pipeline.compat.ultralytics import offline_yolo
from deer_workshop.synthetic.dataset import generate_dataset
from deer_workshop.synthetic.yolo_dataset import CLASS_NAMES, build_yolo_dataset, load_ground_truth

# The CI check of the committed model: this held-out world, scored at CI_IMGSZ with CI_BATCH.
CI_HOLDOUT = {"images": 48, "locations": 3, "seed": 90210, "width": 1280, "height": 720}
CI_IMGSZ = 640
CI_BATCH = 16
README_LABEL = "CI held-out mAP50"


def resolve_device(device: str | None) -> str:
    """Return an ultralytics device string: the given one, else ``0`` with CUDA, else ``cpu``."""
    if device:
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def _cpu_workers(limit: int = 8) -> int:
    """Return how many dataloader workers evaluation may use on this machine."""
    return max(0, min(limit, (os.cpu_count() or 1) - 1))


def evaluate_map(
    weights: str | Path,
    dataset: str | Path,
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
    work_dir: str | Path | None = None,
) -> dict:
    """Score a detector on every image of a generated dataset with ultralytics ``model.val``.

    Args:
        weights: an ultralytics ``.pt`` file.
        dataset: a folder written by ``generate_dataset``.
        imgsz: inference size.
        batch: validation batch size.
        device: ultralytics device (default: CUDA if available, else CPU).
        work_dir: scratch folder (default: a temporary one, removed afterwards).

    Returns:
        ``map50``, ``map50_95``, ``per_class_map50``, ``images``, ``boxes`` and ``seconds``.
    """
    yolo = offline_yolo()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deer_eval_") as tmp:
        work = Path(work_dir) if work_dir else Path(tmp)
        yaml = build_yolo_dataset(dataset, work / "yolo_eval", val_fraction=1.0)
        model = yolo(str(weights))
        m = model.val(
            data=str(yaml),
            imgsz=imgsz,
            batch=batch,
            device=resolve_device(device),
            plots=False,
            split="val",
            project=str(work),
            name="val",
            exist_ok=True,
            workers=_cpu_workers(),
            verbose=False,
        )
    gt = load_ground_truth(dataset)
    per_class = {
        CLASS_NAMES[int(c)]: round(float(ap), 4)
        for c, ap in zip(m.box.ap_class_index, m.box.ap50, strict=True)
    }
    return {
        "map50": round(float(m.box.map50), 4),
        "map50_95": round(float(m.box.map), 4),
        "per_class_map50": per_class,
        "images": len(gt["images"]),
        "boxes": sum(len(e["boxes"]) for e in gt["images"]),
        "seconds": round(time.perf_counter() - start, 1),
    }


def ci_holdout_map50(weights: str | Path, device: str | None = None) -> dict:
    """Generate the fixed CI held-out world and return ``evaluate_map`` of ``weights`` on it."""
    with tempfile.TemporaryDirectory(prefix="deer_ci_holdout_") as tmp:
        generate_dataset(Path(tmp) / "data", workers=min(2, os.cpu_count() or 1), **CI_HOLDOUT)
        return evaluate_map(
            weights,
            Path(tmp) / "data",
            imgsz=CI_IMGSZ,
            batch=CI_BATCH,
            device=device,
            work_dir=Path(tmp) / "work",
        )


def _offline_trainer():
    """Return ultralytics' detection trainer minus its one use of polars.

    ``save_model`` reads ``results.csv`` through polars to embed it in the checkpoint; polars is a
    54 MB wheel that a bare GPU box may not have. The same dict of columns is built with the
    standard ``csv`` module instead, so training needs only ultralytics and ultralytics-thop.
    """
    from ultralytics.models.yolo.detect import DetectionTrainer

    class OfflineDetectionTrainer(DetectionTrainer):
        def read_results_csv(self) -> dict:
            if not Path(self.csv).exists():
                return {}
            with open(self.csv, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            columns = rows[0].keys() if rows else []
            return {key.strip(): [_number(row[key]) for row in rows] for key in columns}

    return OfflineDetectionTrainer


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _time_cap(start: float, minutes: float):
    """Return an ultralytics callback that stops training once ``minutes`` have passed."""

    def stop_when_late(trainer) -> None:
        if time.perf_counter() - start > minutes * 60:
            trainer.stop = True

    return stop_when_late


def train_detector(
    data: str | Path,
    out: str | Path,
    epochs: int,
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
    workers: int = 8,
    val_data: str | Path | None = None,
    work_dir: str | Path = "runs/detector",
    cache: str | bool = False,
    val_each_epoch: bool = False,
    max_minutes: float | None = None,
    amp: str = "auto",
) -> dict:
    """Train YOLOv8n from scratch on a generated dataset and save the stripped weights.

    Args:
        data: a folder written by ``generate_dataset`` (10% of its bursts are the val split).
        out: where to save the final weights (optimizer stripped); metrics go to ``.json`` beside.
        epochs: training epochs.
        imgsz: training and evaluation size.
        batch: training batch size.
        device: ultralytics device (default: CUDA if available, else CPU).
        workers: dataloader workers.
        val_data: a separately generated held-out dataset to report mAP on (default: the val
            split of ``data``).
        work_dir: where ultralytics writes its run (weights, results.csv).
        cache: ultralytics image cache: False, ``ram`` or ``disk``.
        val_each_epoch: validate after every epoch (slower); otherwise only after the last.
        max_minutes: a safety cap: stop after the epoch during which training passes this many
            minutes (the model of that epoch is validated and kept).
        amp: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16`` or ``fp32``. fp16 is not offered:
            ultralytics checks it by downloading a model.

    Returns:
        The metrics that are also written to ``<out>.json``.
    """
    yolo = offline_yolo()
    from ultralytics.utils.torch_utils import strip_optimizer

    device = resolve_device(device)
    work, out = Path(work_dir).resolve(), Path(out)
    yaml = build_yolo_dataset(data, work / "yolo_train", val_fraction=0.1)
    on_cpu = device == "cpu"
    if amp not in ("auto", "bf16", "fp32"):
        raise ValueError(f"amp must be auto, bf16 or fp32, not {amp!r}")
    precision = ("fp32" if on_cpu else "bf16") if amp == "auto" else amp
    start = time.perf_counter()
    model = yolo("yolov8n.yaml")
    if max_minutes:
        model.add_callback("on_train_epoch_end", _time_cap(start, max_minutes))
    model.train(
        trainer=_offline_trainer(),
        data=str(yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=workers,
        pretrained=False,
        plots=False,
        amp=False if precision == "fp32" else "bf16",
        project=str(work),
        name="train",
        exist_ok=True,
        seed=0,
        deterministic=on_cpu,
        cache=cache,
        val=val_each_epoch,
        verbose=True,
    )
    train_seconds = time.perf_counter() - start
    best = Path(model.trainer.best)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best if best.exists() else model.trainer.last, out)
    strip_optimizer(str(out))
    split = model.trainer.metrics or {}
    metrics = {
        "weights": str(out),
        "bytes": out.stat().st_size,
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": device,
        "precision": precision,
        "train_images": len(load_ground_truth(data)["images"]),
        "train_seconds": round(train_seconds, 1),
        "epochs_done": int(model.trainer.epoch) + 1,
        "val_split": {
            "map50": round(float(split.get("metrics/mAP50(B)", 0.0)), 4),
            "map50_95": round(float(split.get("metrics/mAP50-95(B)", 0.0)), 4),
        },
    }
    if val_data:
        metrics["holdout"] = evaluate_map(
            out, val_data, imgsz=imgsz, device=device, work_dir=work / "holdout_eval"
        )
    metrics["ci_holdout"] = ci_holdout_map50(out, device=device)
    metrics["readme_line"] = f"{README_LABEL}: {metrics['ci_holdout']['map50']:.3f}"
    out.with_suffix(".json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Print the CI held-out mAP of a weights file (the value models/README.md must state)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m deer_workshop.synthetic.train_detector",
        description="Score weights with the fixed CI held-out protocol of test_demo_model.py.",
    )
    parser.add_argument("weights", nargs="?", default="models/deer_detector_demo.pt")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = ci_holdout_map50(args.weights, device=args.device)
    print(json.dumps(result))
    print(f"{README_LABEL}: {result['map50']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
