"""A small herd with a known truth, written straight into the database, for the herd survey tests.

Two bucks, four does and three fawns at two locations, one folder named as a person would
("East Gate": its partition key is a slug). Each visit is a three-frame burst; the animal's look
changes between visits (cosine about 0.77), so a run with the matcher at 0.8 founds a deer per
visit and review has to join them. Each buck comes four times, each doe one or two times (bucks
on camera more often, as Moore et al. 2014 found), so the camera-survey estimate is below the
identified does and fawns. Some visits are at night: their frames are grey pictures stored as RGB
JPEGs (as most trail cameras write infrared shots), so only their pixels tell night from day.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

from deer_pipeline.ingest.locations import location_key
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline_tests.reid.builders import Scene, animal, view, walk

EAST, CREEK = "East Gate", "Creek"
MATCH = MatchConfig(threshold=0.8)
ANIMALS = {  # name: (class, identity seed)
    "K1": ("buck", 101),
    "K2": ("buck", 102),
    "D1": ("doe", 201),
    "D2": ("doe", 202),
    "D3": ("doe", 203),
    "D4": ("doe", 204),
    "F1": ("fawn", 301),
    "F2": ("fawn", 302),
    "F3": ("fawn", 303),
}
# (animal, folder, day, hour, night): 8 buck, 6 doe and 3 fawn visits of three frames each.
VISITS = [
    ("K1", EAST, 0, 6, False),
    ("K1", EAST, 1, 22, True),
    ("K1", CREEK, 2, 7, False),
    ("K1", EAST, 4, 18, False),
    ("K2", EAST, 0, 20, True),
    ("K2", CREEK, 1, 6, False),
    ("K2", CREEK, 3, 2, True),
    ("K2", EAST, 5, 7, False),
    ("D1", EAST, 0, 8, False),
    ("D1", CREEK, 3, 19, False),
    ("D2", EAST, 2, 21, True),
    ("D3", CREEK, 1, 7, False),
    ("D4", CREEK, 2, 6, False),
    ("D4", EAST, 5, 5, True),
    ("F1", EAST, 0, 9, False),
    ("F2", CREEK, 3, 20, False),
    ("F3", EAST, 4, 6, False),
]


def truth_herd(truth: dict) -> Counter:
    """Unique true individuals by class, from a ground-truth file's content (contract format)."""
    seen = {}
    for image in truth["images"]:
        for box in image["boxes"]:
            seen[box["individual_id"]] = box["class"]
    return Counter(seen.values())


def _write_jpeg(path: Path, image: dict, night: bool) -> None:
    """A frame as the camera writes it: colour by day, a grey RGB picture at night."""
    size = (image["width"], image["height"])
    if night:
        picture = Image.new("L", size, 60).convert("RGB")
    else:
        picture = Image.new("RGB", size, (70, 110, 50))
    deer = (140, 140, 140) if night else (150, 110, 70)
    ImageDraw.Draw(picture).rectangle((200, 300, 400, 450), fill=deer)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, "JPEG", quality=85)


def build_herd(conn, root: Path) -> dict:
    """Write the herd's images, detections and embeddings, identify both locations.

    Returns:
        ``{"truth": ground-truth path, "keys": {folder: location key}, "night_frames": n}``.
    """
    keys = {folder: location_key(folder) for folder in (EAST, CREEK)}
    scenes = {folder: Scene(keys[folder]) for folder in keys}
    who: dict[str, list[str]] = {folder: [] for folder in keys}
    night_paths = []
    for n, (name, folder, day, hour, night) in enumerate(VISITS):
        cls, seed = ANIMALS[name]
        look = view(animal(seed), 0.55, 1000 + n)
        boxes = walk(80 + 37 * n % 400, 30, 3)
        scene = scenes[folder]
        first = len(scene.images)
        scene.burst(
            [[(cls, box, view(look, 0.1, 5000 + 10 * n + k))] for k, box in enumerate(boxes)],
            minutes=day * 1440 + hour * 60 - 6 * 60,
        )
        who[folder] += [name] * 3
        for image in scene.images[first:]:
            image["rel_path"] = image["rel_path"].replace(f"{keys[folder]}/", f"{folder}/", 1)
            if night:
                night_paths.append(image["rel_path"])
    images = []
    for folder, scene in scenes.items():
        scene.write(conn)
        for det, name in zip(scene.detections, who[folder], strict=True):
            image = scene.images[det["image"]]
            images.append((image["rel_path"], list(det["box"]), ANIMALS[name][0], name))
    with conn.cursor() as cur:
        cur.execute("UPDATE locations SET folder = %s WHERE key = %s", (EAST, keys[EAST]))
        cur.execute("UPDATE images SET color_mode = 'RGB'")
    conn.commit()
    for scene in scenes.values():
        for image in scene.images:
            _write_jpeg(root / image["rel_path"], image, image["rel_path"] in night_paths)
    by_file: dict[str, list] = {}
    for rel_path, box, cls, name in images:
        by_file.setdefault(rel_path, []).append({"bbox": box, "class": cls, "individual_id": name})
    truth = {"images": [{"file": f, "boxes": b} for f, b in by_file.items()]}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "ground_truth.json"
    path.write_text(json.dumps(truth), encoding="utf-8")
    for key in keys.values():
        identify_location(conn, key, MATCH)
    return {"truth": path, "keys": keys, "night_frames": len(night_paths)}
