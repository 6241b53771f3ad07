"""MegaDetector JSON (checked field by field against the format's rules), sightings CSV, gallery."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from deer_pipeline.cli import main
from deer_pipeline.db.connect import connect
from deer_pipeline.exports.gallery import write_gallery
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.review import correct_detection
from deer_pipeline_tests.reid.builders import Scene, animal, view

W, H = 1280, 720


@pytest.fixture
def scene(clean_db):
    """Two bursts, an empty frame, a failed file and a duplicate; one box corrected to not-deer,
    one from buck to doe."""
    conn = connect(clean_db.data)
    s = Scene("Creek")
    s.burst(
        [
            [
                ("doe", (128, 72, 384, 360), view(animal(1), 0.2, k)),
                ("buck", (640, 360, 1280, 720), view(animal(2), 0.2, 5 + k)),
            ]
            for k in range(2)
        ]
    )
    s.burst([[("fawn", (0, 0, 64, 36), view(animal(3), 0.2, 9))], []], minutes=60)
    ids = s.write(conn)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO images (location_key, rel_path, status, error) VALUES"
            " ('Creek', 'Creek/BROKEN.JPG', 'failed', 'truncated JPEG')"
        )
        cur.execute(
            "INSERT INTO images (location_key, rel_path, width, height, status,"
            " duplicate_of) SELECT 'Creek', 'Creek/COPY.JPG', width, height, 'duplicate',"
            " id FROM images WHERE rel_path = 'Creek/B0000_00.JPG'"
        )
    conn.commit()
    identify_location(conn, "Creek", MatchConfig(threshold=0.7))
    correct_detection(conn, ids[4], "not-deer")
    correct_detection(conn, ids[3], "doe")
    yield conn, ids
    conn.close()


def check_megadetector(doc: dict) -> None:
    """Assert every rule of the MegaDetector batch-output format (1.4+) that applies to images."""
    assert set(doc) <= {
        "info",
        "detection_categories",
        "classification_categories",
        "classification_category_descriptions",
        "images",
    }
    assert {"info", "detection_categories", "images"} <= set(doc)
    info = doc["info"]
    assert isinstance(info["format_version"], str) and float(info["format_version"]) >= 1.4
    for key in (
        "detector",
        "detection_completion_time",
        "classifier",
        "classification_completion_time",
    ):
        assert isinstance(info[key], str) and info[key]
    for categories in (doc["detection_categories"], doc["classification_categories"]):
        for key, name in categories.items():
            assert isinstance(key, str) and int(key) >= 0 and str(int(key)) == key
            assert isinstance(name, str) and name.strip()
    assert doc["detection_categories"]["1"] == "animal"
    assert "0" not in doc["detection_categories"]
    assert isinstance(doc["images"], list)
    for im in doc["images"]:
        assert isinstance(im["file"], str) and "\\" not in im["file"]
        assert not im["file"].startswith("/")
        if im.get("failure") is not None:
            assert isinstance(im["failure"], str) and im["failure"]
            assert im["detections"] is None
            continue
        assert isinstance(im["detections"], list)
        for det in im["detections"]:
            assert det["category"] in doc["detection_categories"]
            assert isinstance(det["conf"], float) and 0.0 <= det["conf"] <= 1.0
            x, y, w, h = det["bbox"]
            assert all(isinstance(v, float) for v in det["bbox"])
            assert 0 <= x <= 1 and 0 <= y <= 1 and 0 <= w <= 1 and 0 <= h <= 1
            assert x + w <= 1.0001 and y + h <= 1.0001
            scores = [c[1] for c in det.get("classifications", [])]
            assert scores == sorted(scores, reverse=True)
            for cls, score in det.get("classifications", []):
                assert isinstance(cls, str) and cls in doc["classification_categories"]
                assert isinstance(score, float) and 0.0 <= score <= 1.0
        assert isinstance(im["max_detection_conf"], float)
        assert im["max_detection_conf"] == max((d["conf"] for d in im["detections"]), default=0.0)


def test_megadetector_json_follows_the_format(scene, tmp_path, capsys):
    out = tmp_path / "md.json"
    assert main(["export", "megadetector", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "6 images" in printed and "6 detections" in printed
    doc = json.loads(out.read_text())
    check_megadetector(doc)
    images = {im["file"]: im for im in doc["images"]}
    assert list(images) == [
        "Creek/B0000_00.JPG",
        "Creek/B0000_01.JPG",
        "Creek/B0002_00.JPG",
        "Creek/B0002_01.JPG",
        "Creek/BROKEN.JPG",
        "Creek/COPY.JPG",
    ]
    first = images["Creek/B0000_00.JPG"]["detections"]
    assert first[0] == {
        "category": "1",
        "conf": 0.9,
        "bbox": [0.1, 0.1, 0.2, 0.4],
        "classifications": [["1", 0.9]],
    }
    assert first[1]["bbox"] == [0.5, 0.5, 0.5, 0.5]
    assert first[1]["classifications"] == [["3", 0.9]]  # buck, as detected
    corrected = images["Creek/B0000_01.JPG"]["detections"][1]
    assert corrected["classifications"] == [["1", 1.0]]  # a human said doe
    assert images["Creek/B0002_00.JPG"]["detections"] == []  # the fawn box was not-deer
    assert images["Creek/B0002_00.JPG"]["max_detection_conf"] == 0.0
    assert images["Creek/BROKEN.JPG"] == {
        "file": "Creek/BROKEN.JPG",
        "failure": "truncated JPEG",
        "detections": None,
    }
    assert images["Creek/COPY.JPG"]["detections"] == first


def test_sightings_csv(scene, tmp_path, capsys):
    conn, ids = scene
    out = tmp_path / "sightings.csv"
    assert main(["export", "sightings", str(out)]) == 0
    assert "4 sightings" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and {r["location"] for r in rows} == {"Creek"}
    by_det = {int(r["detection_id"]): r for r in rows}
    assert by_det[ids[3]]["class"] == "doe" and by_det[ids[3]]["sex"] == "doe"
    assert by_det[ids[0]]["image"] == "Creek/B0000_00.JPG"
    assert by_det[ids[0]]["captured_at"] == "2024-09-01 06:00:00"
    assert float(by_det[ids[0]]["x2"]) == 384.0
    assert {r["method"] for r in rows} <= {"new", "burst", "match", "manual"}


def test_gallery_page_and_thumbnails(scene, tmp_path):
    conn, _ = scene
    root = tmp_path / "images"
    (root / "Creek").mkdir(parents=True)
    with conn.cursor() as cur:
        cur.execute("SELECT rel_path FROM images WHERE status = 'ok'")
        for (rel,) in cur.fetchall():
            Image.new("RGB", (W, H), (90, 120, 60)).save(root / rel, "JPEG")
        result = write_gallery(cur, root, tmp_path / "reports")
        again = write_gallery(cur, root, tmp_path / "reports")
    page = (tmp_path / "reports" / "deer_gallery.html").read_text()
    assert result["deer"] == 3 and result["thumbnails"] == 4 and result["new_thumbnails"] == 4
    assert again["new_thumbnails"] == 0
    assert page.count("<tr><td class=id>") == 3 and "deer_gallery/d" in page
    thumbs = list((tmp_path / "reports" / "deer_gallery").glob("*.jpg"))
    assert len(thumbs) == 4 and max(Image.open(t).size[0] for t in thumbs) <= 128
