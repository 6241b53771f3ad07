"""A small herd written straight into the database, with real JPEGs, for the review app's tests.

Three animals at one location: doe A and buck B each came twice, looking different enough between
visits that the matcher (threshold 0.8) founds a deer per visit, similar enough (about 0.77) that
review proposes the pair; doe C came once. So a run leaves five deer for three animals, and a
perfect reviewer needs two merges. Every image exists as a JPEG under the image root, so crops are
cut from real files.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from deer_pipeline.db.connect import connect
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline_tests.reid.builders import Scene, animal, sightings, view, walk

MATCH = MatchConfig(threshold=0.8)
COLOURS = {"A": (150, 110, 70), "B": (90, 70, 50), "C": (190, 160, 120)}


def _visits():
    """(animal, class, identity seed, visit seed, minutes) of each visit."""
    return [
        ("A", "doe", 1, 11, 0),
        ("B", "buck", 2, 21, 30),
        ("A", "doe", 1, 12, 120),
        ("C", "doe", 3, 31, 180),
        ("B", "buck", 2, 22, 240),
    ]


def write_images(root, scene: Scene, who: list[str]) -> dict:
    """Write every image of the scene as a JPEG; return the ground truth (contract format)."""
    entries = {im["rel_path"]: [] for im in scene.images}
    for det, name in zip(scene.detections, who, strict=True):
        entries[scene.images[det["image"]]["rel_path"]].append(
            {"bbox": list(det["box"]), "class": det["class"], "individual_id": name}
        )
    for im in scene.images:
        path = root / im["rel_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.new("RGB", (im["width"], im["height"]), (60, 90, 50))
        draw = ImageDraw.Draw(picture)
        for box in entries[im["rel_path"]]:
            draw.rectangle(box["bbox"], fill=COLOURS[box["individual_id"]])
        picture.save(path, "JPEG", quality=85)
    truth = {"images": [{"file": k, "boxes": v} for k, v in entries.items()]}
    (root / "ground_truth.json").write_text(json.dumps(truth))
    return truth


@pytest.fixture
def herd(clean_db, tmp_path):
    """The herd, identified by one run: a dict with conn, ids, who, root, truth path."""
    scene = Scene("L1")
    who = []
    for name, cls, identity, visit, minutes in _visits():
        look = view(animal(identity), 0.55, visit)
        boxes = walk(100 + 40 * visit % 300, 30, 3)
        scene.burst(
            [[(cls, box, view(look, 0.1, 100 * visit + k))] for k, box in enumerate(boxes)],
            minutes=minutes,
        )
        who += [name] * 3
    conn = connect(clean_db.data)
    ids = scene.write(conn)
    root = tmp_path / "images"
    write_images(root, scene, who)
    identify_location(conn, "L1", MATCH)
    yield {
        "conn": conn,
        "ids": ids,
        "who": who,
        "root": root,
        "truth": root / "ground_truth.json",
        "urls": clean_db,
    }
    conn.close()


def deer_of(conn) -> dict[int, int]:
    """detection id -> deer id."""
    return {d: deer for d, (deer, _) in sightings(conn).items()}
