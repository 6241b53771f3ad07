"""The generated dataset: layout, ground-truth format, EXIF, bursts, revisits, night frames."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np
from PIL import ExifTags, Image

from deer_workshop.synthetic.world import LOCATION_NAMES


def test_layout_and_summary(small_dataset):
    out, summary, gt = small_dataset
    assert summary["images"] == len(gt["images"]) == 160
    assert summary["boxes"] == sum(len(e["boxes"]) for e in gt["images"])
    assert summary["bytes_per_image"] > 0 and summary["images_per_s"] > 0
    folders = {e["file"].split("/")[0] for e in gt["images"]}
    assert folders == set(LOCATION_NAMES[:3])
    assert any(" " in f for f in folders)
    assert any("/DCIM/100MEDIA/" in e["file"] for e in gt["images"])
    for e in gt["images"]:
        assert (out / e["file"]).is_file()
        assert e["file"].endswith(".JPG")
    assert len({e["file"] for e in gt["images"]}) == len(gt["images"])


def test_boxes_are_well_formed(small_dataset):
    _, _, gt = small_dataset
    ids = {d["individual_id"]: d["class"] for d in gt["individuals"]}
    for e in gt["images"]:
        for b in e["boxes"]:
            x1, y1, x2, y2 = b["bbox"]
            assert 0 <= x1 < x2 <= e["width"] and 0 <= y1 < y2 <= e["height"]
            assert b["class"] in ("doe", "fawn", "buck")
            assert ids[b["individual_id"]] == b["class"]
    classes = {b["class"] for e in gt["images"] for b in e["boxes"]}
    assert classes == {"doe", "fawn", "buck"}


def test_exif_matches_ground_truth(small_dataset):
    out, _, gt = small_dataset
    makes = set()
    for e in gt["images"][::7]:
        with Image.open(out / e["file"]) as im:
            exif = im.getexif()
            assert im.size == (e["width"], e["height"])
        original = exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal]
        when = datetime.fromisoformat(e["captured_at"])
        assert original == when.strftime("%Y:%m:%d %H:%M:%S")
        assert exif[ExifTags.Base.DateTime] == original
        assert exif[ExifTags.Base.Make] == e["camera_make"]
        assert exif[ExifTags.Base.Model] == e["camera_model"]
        makes.add(e["camera_make"])
    assert len(makes) >= 3


def test_bursts_and_time_gaps(small_dataset):
    _, _, gt = small_dataset
    bursts = defaultdict(list)
    for e in gt["images"]:
        bursts[e["burst"]].append(e)
    starts = defaultdict(list)
    for frames in bursts.values():
        assert 3 <= len(frames) <= 10
        times = [datetime.fromisoformat(f["captured_at"]) for f in frames]
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert all(1 <= g <= 3 for g in gaps), gaps
        starts[frames[0]["location"]].append(times[0])
    for times in starts.values():
        times.sort()
        assert all((b - a).total_seconds() >= 180 for a, b in zip(times, times[1:], strict=False))


def test_revisits_groups_and_empty_frames(small_dataset):
    _, _, gt = small_dataset
    visits = defaultdict(set)
    places = defaultdict(set)
    two_adults = 0
    for e in gt["images"]:
        for b in e["boxes"]:
            visits[b["individual_id"]].add(e["burst"])
            places[b["individual_id"]].add(e["location"])
        adults = {b["individual_id"] for b in e["boxes"] if b["class"] != "fawn"}
        two_adults += len(adults) >= 2
    assert sum(len(v) >= 2 for v in visits.values()) >= 3
    assert sum(len(p) >= 2 for p in places.values()) >= 1
    assert two_adults >= 1
    assert sum(not e["boxes"] for e in gt["images"]) >= 5


def test_night_frames_are_grayscale_and_day_frames_colour(small_dataset):
    out, summary, gt = small_dataset
    assert 0 < summary["night_images"] < summary["images"]
    night = [e for e in gt["images"] if e["night"]][:4]
    day = [e for e in gt["images"] if not e["night"]][:4]
    for e in night:
        arr = np.asarray(Image.open(out / e["file"]).convert("RGB")).astype(int)
        assert np.abs(arr[..., 0] - arr[..., 1]).max() <= 4
        assert np.abs(arr[..., 2] - arr[..., 1]).max() <= 4
        assert datetime.fromisoformat(e["captured_at"]).hour not in range(9, 17)
    for e in day:
        arr = np.asarray(Image.open(out / e["file"]).convert("RGB")).astype(int)
        assert np.abs(arr[..., 0] - arr[..., 2]).mean() > 10
