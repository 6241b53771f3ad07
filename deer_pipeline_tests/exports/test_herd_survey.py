"""The herd survey report on a herd with a known truth: counts, ratios, the camera-survey sum."""

from __future__ import annotations

import json

import pytest

from deer_pipeline.cli import main
from deer_pipeline.db.connect import connect
from deer_pipeline.exports.herd_survey import read_survey
from deer_pipeline.vision.monochrome import frame_is_monochrome as is_infrared
from deer_pipeline_tests.exports.herd_world import CREEK, EAST, build_herd, truth_herd

SUMMARY_KEYS = {
    "window",
    "camera_days",
    "unique",
    "reviewed_deer",
    "photos",
    "jacobson",
    "ratios",
    "per_location",
    "activity_by_hour",
}


@pytest.fixture
def herd(clean_db, tmp_path, monkeypatch):
    conn = connect(clean_db.data)
    world = build_herd(conn, tmp_path / "world")
    monkeypatch.setenv("DEER_IMAGE_ROOT", str(tmp_path / "world"))
    yield {**world, "conn": conn}
    conn.close()


def _report(herd, out, *extra) -> dict:
    assert main(["report", "herd", str(out), *extra]) == 0
    return json.loads((out / "summary.json").read_text())


def _independent_camera_survey(cur) -> dict:
    """The camera-survey formula over the detections table, written apart from the module."""
    cur.execute(
        "SELECT COALESCE(c.class_name, d.class_name), count(*) FROM detections d"
        " JOIN images i ON i.id = d.image_id"
        " LEFT JOIN detection_corrections c ON c.detection_id = d.id"
        " WHERE i.status = 'ok' GROUP BY 1"
    )
    photos = dict(cur.fetchall())
    cur.execute(
        "SELECT count(DISTINCT s.deer_id) FROM sightings s JOIN deer r ON r.id = s.deer_id"
        " WHERE r.sex = 'buck'"
    )
    bucks = cur.fetchone()[0]
    does = bucks * photos.get("doe", 0) / photos["buck"]
    fawns = bucks * photos.get("fawn", 0) / photos["buck"]
    return {"bucks": bucks, "does": does, "fawns": fawns, "total": bucks + does + fawns}


def _close_to_truth(found: int, true: int) -> bool:
    return abs(found - true) <= max(0.1 * true, 1 if true < 10 else 0)


def test_report_matches_the_true_herd_after_review(herd, tmp_path, capsys):
    truth = truth_herd(json.loads(herd["truth"].read_text()))
    assert dict(truth) == {"buck": 2, "doe": 4, "fawn": 3}
    before = _report(herd, tmp_path / "before")
    assert set(before) == SUMMARY_KEYS
    assert before["reviewed_deer"] == 0 and before["unique"]["total"] == 17  # one deer a visit
    assert main(["review", "simulate", "--truth", str(herd["truth"])]) == 0
    capsys.readouterr()
    after = _report(herd, tmp_path / "after")
    out = capsys.readouterr().out
    assert "unique deer 9 (2 bucks, 4 does, 3 fawns, 0 unknown)" in out
    for cls in ("buck", "doe", "fawn"):
        assert _close_to_truth(after["unique"][cls], truth[cls]), (cls, after["unique"])
    true_ratios = {"does_per_buck": truth["doe"] / truth["buck"], "fawns_per_doe": 3 / 4}
    for key, value in true_ratios.items():
        assert after["ratios"][key] == pytest.approx(value, abs=0.1)
    assert after["reviewed_deer"] == 9  # merged, or asked about as a possible stray and kept
    assert after["photos"] == {"buck": 24, "doe": 18, "fawn": 9}
    with herd["conn"].cursor() as cur:
        expected = _independent_camera_survey(cur)
    assert after["jacobson"] == pytest.approx(expected)
    assert after["jacobson"]["does"] == pytest.approx(1.5)  # 2 bucks x 18 / 24: 2.5 does low
    assert after["window"] == {"start": "2024-09-01", "end": "2024-09-06"}
    by_name = {loc["name"]: loc for loc in after["per_location"]}
    assert set(by_name) == {EAST, CREEK}
    assert by_name[EAST]["location"] == herd["keys"][EAST] != EAST
    assert by_name[EAST]["unique"]["buck"] == 2 and by_name[CREEK]["unique"]["fawn"] == 1
    # East Gate: photos from day 0 to day 5 -> 6 camera-days, 10 visits of 3 detections.
    assert by_name[EAST]["rai"] == pytest.approx(100 * 30 / 6)
    assert after["camera_days"] == 6 + 3  # Creek: photos from day 1 to day 3
    assert sum(after["activity_by_hour"]) == 51 and len(after["activity_by_hour"]) == 24
    assert after["activity_by_hour"][22] == 3  # K1's night visit at 22:00
    page = (tmp_path / "after" / "index.html").read_text()
    assert EAST in page and herd["keys"][EAST] not in page
    assert "so it puts does at 1.5 where 4 were identified (62% low" in page


def test_window_and_location_filters(herd, tmp_path, capsys):
    only = _report(herd, tmp_path / "east", "--location", herd["keys"][EAST], "--to", "2024-09-01")
    assert only["window"] == {"start": "2024-09-01", "end": "2024-09-01"}
    assert [loc["name"] for loc in only["per_location"]] == [EAST]
    # day 0 at East Gate: K1 06:00, K2 20:00 (night), D1 08:00, F1 09:00
    assert only["unique"] == {"buck": 2, "doe": 1, "fawn": 1, "unknown": 0, "total": 4}
    assert only["camera_days"] == 1
    assert only["activity_by_hour"][20] == 3
    empty = _report(herd, tmp_path / "empty", "--from", "2025-01-01", "--to", "2025-01-31")
    out = capsys.readouterr().out
    assert "no photos in this window" in out
    assert empty["unique"]["total"] == 0 and empty["camera_days"] == 0
    assert empty["jacobson"] == {"bucks": 0, "does": None, "fawns": None, "total": None}
    assert empty["ratios"] == {"does_per_buck": None, "fawns_per_doe": None}
    assert all(loc["rai"] is None for loc in empty["per_location"])
    before = _report(herd, tmp_path / "before", "--to", "2024-08-01")
    assert before["window"] == {"start": None, "end": "2024-08-01"}
    assert before["camera_days"] == 0 and before["unique"]["total"] == 0
    page = (tmp_path / "empty" / "index.html").read_text()
    assert 'id="no-photos"' in page and "<img" not in page
    assert main(["report", "herd", str(tmp_path / "x"), "--location", "Nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown location 'Nowhere'" in err[0]
    assert not (tmp_path / "x").exists()
    # the folder name works as well as the key
    named = _report(herd, tmp_path / "named", "--location", EAST)
    assert [loc["location"] for loc in named["per_location"]] == [herd["keys"][EAST]]


def test_night_is_told_from_the_pictures(herd, tmp_path):
    """Night frames are grey RGB JPEGs: only their pixels say so (5 night visits, 3 frames)."""
    with herd["conn"].cursor() as cur:
        blind = read_survey(cur)
        seen = read_survey(cur, image_root=tmp_path / "world")
    assert sum(blind.activity_night) == 0 and not blind.light_from_files
    assert sum(seen.activity_night) == 15 and seen.unreadable_frames == 0
    assert [h for h in range(24) if seen.activity_night[h]] == [2, 5, 20, 21, 22]
    assert seen.activity == blind.activity


def test_infrared_on_real_photos(camera_traps):
    """The 75 real sample photos: 32 grey (infrared) ones, all stored as RGB JPEGs."""
    files = sorted(p for p in camera_traps.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    found = [is_infrared(p) for p in files]
    assert len(files) == 75 and None not in found
    assert sum(found) == 32
