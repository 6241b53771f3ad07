"""Conversion of a generated dataset to an ultralytics YOLO dataset."""

from __future__ import annotations

import os

from deer_workshop.synthetic.yolo_dataset import CLASS_NAMES, build_yolo_dataset


def test_labels_match_ground_truth_and_split_by_burst(small_dataset, tmp_path):
    out, summary, gt = small_dataset
    yaml = build_yolo_dataset(out, tmp_path / "yolo", val_fraction=0.25)
    text = yaml.read_text()
    assert "train: images/train" in text and "val: images/val" in text
    for i, name in enumerate(CLASS_NAMES):
        assert f"  {i}: {name}" in text
    labels = sorted((tmp_path / "yolo" / "labels").rglob("*.txt"))
    images = sorted((tmp_path / "yolo" / "images").rglob("*.jpg"))
    assert len(labels) == len(images) == summary["images"]
    lines = [line.split() for p in labels for line in p.read_text().splitlines()]
    assert len(lines) == summary["boxes"]
    for cls, *coords in lines:
        assert int(cls) in (0, 1, 2)
        assert all(0.0 <= float(v) <= 1.0 for v in coords)
    first = images[0]
    source = out / gt["images"][int(first.name.split("_")[0])]["file"]
    assert os.path.samefile(first, source)
    split_of = {}
    for p in images:
        burst = gt["images"][int(p.name.split("_")[0])]["burst"]
        assert split_of.setdefault(burst, p.parent.name) == p.parent.name
    assert set(split_of.values()) == {"train", "val"}


def test_evaluation_layout_puts_everything_in_val(small_dataset, tmp_path):
    out, summary, _ = small_dataset
    yaml = build_yolo_dataset(out, tmp_path / "yolo", val_fraction=1.0)
    assert "train: images/val" in yaml.read_text()
    assert len(list((tmp_path / "yolo" / "images" / "val").iterdir())) == summary["images"]
    assert not (tmp_path / "yolo" / "images" / "train").exists()
