"""Incremental ingest against the real database: real photos, re-runs, additions, deletions."""

import csv
import os
from collections import Counter
from datetime import datetime

from . import photos
from .helpers import ingest, rows


def test_real_camera_traps_match_truth(camera_traps, clean_db, db_conn):
    reports = [ingest(db_conn, camera_traps, folder) for folder in ("peru_s90", "southwest")]
    got = {**rows(db_conn, "peru_s90"), **rows(db_conn, "southwest")}
    with open(camera_traps / "truth.csv", newline="") as handle:
        truth = {row["path"]: row for row in csv.DictReader(handle)}
    assert set(got) == set(truth) and {r["status"] for r in got.values()} == {"ok"}
    for path, want in truth.items():
        row = got[path]
        assert (row["width"], row["height"]) == (int(want["width"]), int(want["height"]))
        assert (row["camera_make"] or "", row["camera_model"] or "") == (
            want["exif_make"],
            want["exif_model"],
        )
        assert row["bytes"] == int(want["bytes"]) and len(row["sha256"]) == 64
        if want["exif_datetime_original"]:
            when = datetime.strptime(want["exif_datetime_original"], "%Y:%m:%d %H:%M:%S")
            assert (row["captured_at"], row["captured_at_source"]) == (when, "exif_original")
    peru = [r for p, r in got.items() if p.startswith("peru_s90/")]
    sizes = Counter(Counter(r["burst_id"] for r in peru).values())
    assert sizes == {3: 20}
    for row in peru:  # burst id = id of the burst's first frame
        first = min(
            (r for r in peru if r["burst_id"] == row["burst_id"]),
            key=lambda r: (r["captured_at"], r["id"]),
        )
        assert row["burst_id"] == first["id"]
    with db_conn.cursor() as cur:
        cur.execute("SELECT key, folder FROM locations ORDER BY key")
        assert cur.fetchall() == [("peru_s90", "peru_s90"), ("southwest", "southwest")]
    assert [r.skipped for r in reports] == [{"non_images": 1}, {"non_images": 1}]
    assert reports[0].bursts == 20 and reports[0].read == 60


def test_rerun_add_delete_change(tmp_path, clean_db, db_conn):
    loc = tmp_path / "Creek"
    for i in range(4):
        photos.write(loc / f"IMG_{i:04}.JPG", photos.jpeg_bytes(100 + i))
    first = ingest(db_conn, tmp_path, "Creek")
    assert (first.new, first.read, first.status_counts) == (4, 4, {"ok": 4})
    before = rows(db_conn, "Creek")

    again = ingest(db_conn, tmp_path, "Creek")
    assert (again.read, again.rows_written, again.unchanged) == (0, 0, 4)
    assert rows(db_conn, "Creek") == before  # nothing changed, not even ingested_at

    for i in range(4, 7):
        photos.write(loc / "DCIM" / f"IMG_{i:04}.JPG", photos.jpeg_bytes(100 + i))
    added = ingest(db_conn, tmp_path, "Creek")
    assert (added.new, added.read, added.unchanged) == (3, 3, 4)
    assert len(rows(db_conn, "Creek")) == 7

    (loc / "IMG_0000.JPG").unlink()
    gone = ingest(db_conn, tmp_path, "Creek")
    after = rows(db_conn, "Creek")
    assert gone.missing == 1 and gone.read == 0 and len(after) == 7
    assert after["Creek/IMG_0000.JPG"]["status"] == "missing"
    assert after["Creek/IMG_0000.JPG"]["id"] == before["Creek/IMG_0000.JPG"]["id"]

    photos.write(loc / "IMG_0001.JPG", photos.jpeg_bytes(999), mtime=photos.OLD + 5)
    changed = ingest(db_conn, tmp_path, "Creek")
    assert (changed.changed, changed.read) == (1, 1)
    row = rows(db_conn, "Creek")["Creek/IMG_0001.JPG"]
    assert row["id"] == before["Creek/IMG_0001.JPG"]["id"]
    assert row["sha256"] != before["Creek/IMG_0001.JPG"]["sha256"]

    photos.write(loc / "IMG_0000.JPG", photos.jpeg_bytes(100))  # restored
    restored = ingest(db_conn, tmp_path, "Creek")
    assert restored.changed == 1 and restored.status_counts == {"ok": 7}


def test_file_still_being_written_waits_for_the_next_run(tmp_path, clean_db, db_conn):
    photos.write(tmp_path / "Pond" / "old.jpg", photos.jpeg_bytes(1))
    ingest(db_conn, tmp_path, "Pond")
    # Written just now (its ctime is now, even with an old mtime, as a copy tool may set it).
    photos.write(tmp_path / "Pond" / "fresh.jpg", photos.jpeg_bytes(2))
    waiting = ingest(db_conn, tmp_path, "Pond", settle_s=60)
    assert (waiting.read, waiting.pending, waiting.listing_digest) == (0, 1, "")
    assert list(rows(db_conn, "Pond")) == ["Pond/old.jpg"]
    later = ingest(db_conn, tmp_path, "Pond", settle_s=0)
    assert (later.read, later.pending, later.new) == (1, 0, 1) and later.listing_digest


def test_duplicate_is_promoted_when_its_original_goes(tmp_path, clean_db, db_conn):
    data = photos.jpeg_bytes(7)
    photos.write(tmp_path / "Dup" / "a.jpg", data)
    photos.write(tmp_path / "Dup" / "b.jpg", data, mtime=photos.OLD + 1)
    photos.write(tmp_path / "Other" / "a.jpg", data)
    ingest(db_conn, tmp_path, "Dup")
    other = ingest(db_conn, tmp_path, "Other")
    assert other.status_counts == {"ok": 1} and other.copies_elsewhere == 1  # counted, not demoted
    got = rows(db_conn, "Dup")
    assert got["Dup/b.jpg"]["duplicate_of"] == got["Dup/a.jpg"]["id"]
    os.remove(tmp_path / "Dup" / "a.jpg")
    ingest(db_conn, tmp_path, "Dup")
    got = rows(db_conn, "Dup")
    assert (got["Dup/a.jpg"]["status"], got["Dup/b.jpg"]["status"]) == ("missing", "ok")
    assert got["Dup/b.jpg"]["duplicate_of"] is None


def test_vanished_folder_marks_everything_missing(tmp_path, clean_db, db_conn):
    photos.write(tmp_path / "Gone" / "a.jpg", photos.jpeg_bytes(1))
    ingest(db_conn, tmp_path, "Gone")
    os.remove(tmp_path / "Gone" / "a.jpg")
    os.rmdir(tmp_path / "Gone")
    report = ingest(db_conn, tmp_path, "Gone")
    assert not report.folder_found and report.status_counts == {"missing": 1}


def test_unreadable_file_is_failed_then_retried(tmp_path, clean_db, db_conn, monkeypatch):
    from deer_pipeline.ingest import inspect

    photos.write(tmp_path / "Locked" / "a.jpg", photos.jpeg_bytes(1))
    real_read = inspect.read_whole

    def denied(entry, max_bytes):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(inspect, "read_whole", denied)  # as root, chmod 000 would not stop us
    first = ingest(db_conn, tmp_path, "Locked")
    assert first.failures == [("Locked/a.jpg", "cannot read the file: Permission denied")]
    again = ingest(db_conn, tmp_path, "Locked")
    assert (again.changed, again.rows_written) == (0, 0)
    monkeypatch.setattr(inspect, "read_whole", real_read)  # permissions fixed: size/mtime same
    fixed = ingest(db_conn, tmp_path, "Locked")
    assert (fixed.changed, fixed.status_counts) == (1, {"ok": 1})
