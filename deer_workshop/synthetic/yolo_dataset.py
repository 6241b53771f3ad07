"""Turn a generated dataset (``ground_truth.json``) into an ultralytics YOLO dataset.

ultralytics wants ``images/<split>/*.jpg`` beside ``labels/<split>/*.txt`` and a ``data.yaml``.
Images are hard-linked (or symlinked across file systems), never copied. The train/val split is
made per burst, so near-identical frames of one burst never sit on both sides of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from deer_pipeline.vocabulary import DEER_CLASSES
from deer_workshop.synthetic.dataset import GROUND_TRUTH

CLASS_NAMES = DEER_CLASSES  # the one vocabulary (deer_pipeline.vocabulary)


def load_ground_truth(dataset: str | Path) -> dict:
    """Read ``ground_truth.json`` of a generated dataset folder."""
    return json.loads((Path(dataset) / GROUND_TRUTH).read_text(encoding="utf-8"))


def _link(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``; fall back to a symlink across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        os.symlink(src.resolve(), dst)


def label_lines(entry: dict) -> list[str]:
    """Return an image's YOLO label lines: class, x_center, y_center, width, height (0..1)."""
    w, h = entry["width"], entry["height"]
    lines = []
    for box in entry["boxes"]:
        x1, y1, x2, y2 = box["bbox"]
        cls = CLASS_NAMES.index(box["class"])
        lines.append(
            f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
            f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
        )
    return lines


def build_yolo_dataset(
    dataset: str | Path, out: str | Path, val_fraction: float = 0.1, seed: int = 0
) -> Path:
    """Write a YOLO dataset for ``dataset`` under ``out`` and return its ``data.yaml``.

    Args:
        dataset: a folder written by ``generate_dataset``.
        out: where to write ``images/``, ``labels/`` and ``data.yaml`` (those are replaced).
        val_fraction: share of bursts for the val split; 1.0 puts every image in val (evaluation
            only: the yaml then names val as train too, since ultralytics requires a train key).
        seed: seed of the burst split.

    Returns:
        The path of ``data.yaml``.
    """
    dataset, out = Path(dataset).resolve(), Path(out).resolve()
    gt = load_ground_truth(dataset)
    bursts = sorted({e.get("burst", e["file"]) for e in gt["images"]})
    rng = np.random.default_rng(seed)
    n_val = len(bursts) if val_fraction >= 1 else max(1, round(val_fraction * len(bursts)))
    val = {bursts[int(i)] for i in rng.permutation(len(bursts))[:n_val]}
    for sub in ("images", "labels"):
        shutil.rmtree(out / sub, ignore_errors=True)
    counts = {"train": 0, "val": 0}
    for i, entry in enumerate(gt["images"]):
        split = "val" if entry.get("burst", entry["file"]) in val else "train"
        stem = f"{i:06d}_" + re.sub(r"[^A-Za-z0-9]+", "_", entry["file"]).strip("_")
        for sub in ("images", "labels"):
            (out / sub / split).mkdir(parents=True, exist_ok=True)
        _link(dataset / entry["file"], out / "images" / split / f"{stem}.jpg")
        (out / "labels" / split / f"{stem}.txt").write_text(
            "".join(line + "\n" for line in label_lines(entry)), encoding="utf-8"
        )
        counts[split] += 1
    train = "images/train" if counts["train"] else "images/val"
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    yaml = out / "data.yaml"
    text = f"path: {json.dumps(str(out))}\ntrain: {train}\nval: images/val\nnames:\n{names}"
    yaml.write_text(text, encoding="utf-8")
    return yaml
