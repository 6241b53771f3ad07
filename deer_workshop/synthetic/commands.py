"""The ``demo-data`` and ``train-detector`` sub-commands of ``deer-pipeline``.

``deer_pipeline/cli.py`` calls ``register`` to add them. Both run without Dagster or a database
(e.g. on a bare GPU box), so heavy imports happen inside the command functions. The module also
runs alone: ``python -m deer_workshop.synthetic.commands demo-data OUT --images N ...``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deer_pipeline.errors import DeerError


def register(subparsers) -> None:
    """Add ``demo-data`` and ``train-detector`` to an argparse sub-parser collection."""
    p = subparsers.add_parser(
        "demo-data",
        help="write a synthetic trail-camera dataset with ground truth",
        description="Write OUT/<location>/...JPG (with EXIF) and OUT/ground_truth.json. The same "
        "seed and arguments give the same bytes, whatever the number of workers.",
    )
    p.add_argument("out", help="output folder")
    p.add_argument("--images", type=int, default=300, help="number of images (default 300)")
    p.add_argument("--locations", type=int, default=3, help="camera locations (default 3)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--width", type=int, default=1920, help="image width (default 1920)")
    p.add_argument("--height", type=int, default=1080, help="image height (default 1080)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPUs)")
    p.set_defaults(func=demo_data)

    t = subparsers.add_parser(
        "train-detector",
        help="train the YOLOv8n deer detector from scratch on demo data",
        description="Train YOLOv8n (from yolov8n.yaml, no download) on a demo-data folder, save "
        "stripped weights and write mAP50 / mAP50-95 to <out>.json.",
    )
    t.add_argument("data", help="a folder written by demo-data")
    t.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    t.add_argument("--imgsz", type=int, default=640, help="train/eval image size (default 640)")
    t.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    t.add_argument("--device", default=None, help="e.g. 0, cpu (default: CUDA if available)")
    t.add_argument("--workers", type=int, default=8, help="dataloader workers (default 8)")
    t.add_argument("--out", default="models/deer_detector_demo.pt", help="weights path")
    t.add_argument("--val-data", default=None, help="held-out demo-data folder to report mAP on")
    t.add_argument("--work-dir", default="runs/detector", help="ultralytics run folder")
    t.add_argument(
        "--cache",
        choices=("none", "ram", "disk"),
        default="none",
        help="ultralytics image cache (default none)",
    )
    t.add_argument("--val-each-epoch", action="store_true", help="validate after every epoch")
    t.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="safety cap: stop after the epoch that passes this many minutes",
    )
    t.add_argument(
        "--amp",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="training precision (default auto: bf16 on CUDA, fp32 on CPU)",
    )
    t.set_defaults(func=train_detector_command)


def demo_data(args: argparse.Namespace) -> int:
    """Run ``demo-data``: generate the dataset and print a summary."""
    from deer_workshop.synthetic.dataset import generate_dataset

    if args.images < 1 or args.locations < 1:
        raise DeerError("--images and --locations must be at least 1")
    if args.width < 64 or args.height < 64:
        raise DeerError("--width and --height must be at least 64 pixels")
    s = generate_dataset(
        args.out,
        args.images,
        args.locations,
        seed=args.seed,
        width=args.width,
        height=args.height,
        workers=args.workers,
    )
    print(
        f"wrote {s['images']} images ({s['locations']} locations, {s['individuals']} deer, "
        f"{s['boxes']} boxes, {s['empty_images']} empty, {s['night_images']} night) to "
        f"{s['out']} in {s['seconds']} s: {s['images_per_s']} images/s, "
        f"{s['bytes_per_image'] / 1024:.0f} KiB/image"
    )
    print(json.dumps(s))
    return 0


def train_detector_command(args: argparse.Namespace) -> int:
    """Run ``train-detector``: train, save the weights and print the metrics."""
    from deer_workshop.synthetic.train_detector import train_detector

    if not (Path(args.data) / "ground_truth.json").is_file():
        raise DeerError(f"{args.data} has no ground_truth.json: write it with demo-data first")
    if args.val_data and not (Path(args.val_data) / "ground_truth.json").is_file():
        raise DeerError(f"{args.val_data} has no ground_truth.json: write it with demo-data first")
    metrics = train_detector(
        args.data,
        args.out,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        workers=args.workers,
        val_data=args.val_data,
        work_dir=args.work_dir,
        cache=False if args.cache == "none" else args.cache,
        val_each_epoch=args.val_each_epoch,
        max_minutes=args.max_minutes,
        amp=args.amp,
    )
    print(metrics["readme_line"])
    print(json.dumps(metrics))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one of this module's commands without the full ``deer-pipeline`` CLI."""
    parser = argparse.ArgumentParser(prog="python -m deer_workshop.synthetic.commands")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
