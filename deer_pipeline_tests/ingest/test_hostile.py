"""Every hostile file a card can hold: none stops the run, none is silently dropped."""

import os

from deer_pipeline.ingest.plan import BROKEN_LINK

from . import photos
from .helpers import ingest, rows

LOC = "Hostile Ridge"
NAMES = ['it\'s "quoted"; DROP TABLE images;.jpg', "with  spaces .JPG", "Ünïcødé_鹿_ß.jpg"]


def build(root):
    loc = root / LOC / "DCIM" / "100MEDIA"
    good = photos.jpeg_bytes(1, make="Acme", when=photos.datetime(2024, 5, 1, 6, 0, 0))
    photos.write(loc / "good.jpg", good)
    photos.write(loc / "copy of good.jpg", good, mtime=photos.OLD + 60)  # copied later
    photos.write(loc / "empty.jpg", b"")
    photos.write(loc / "truncated.jpg", photos.jpeg_bytes(2)[:-300])
    photos.write(loc / "header_only.jpg", photos.jpeg_bytes(3)[:40])
    photos.write(loc / "text.jpg", b"this is not a photo\n")
    photos.write(loc / "page.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>")
    photos.write(loc / "png.jpg", photos.jpeg_bytes(4, fmt="PNG"))
    photos.write(loc / "cmyk.jpg", photos.jpeg_bytes(5, mode="CMYK"))
    photos.write(loc / "ir.jpg", photos.jpeg_bytes(6, mode="L"))
    photos.write(loc / "rotated.jpg", photos.jpeg_bytes(7, size=(64, 48), orientation=6))
    photos.write(loc / "bomb.jpg", photos.with_frame_size(photos.jpeg_bytes(8), 20000, 20000))
    for i, name in enumerate(NAMES):
        photos.write(loc / name, photos.jpeg_bytes(10 + i))
    photos.write(loc / ".hidden.jpg", photos.jpeg_bytes(20))
    photos.write(loc / "Thumbs.db", b"x")
    photos.write(loc / "readme.txt", b"x")
    os.symlink("..", loc / "loop")
    os.symlink("missing-target.jpg", loc / "dangling.jpg")


def test_every_hostile_file_gets_a_row_or_a_count(tmp_path, clean_db, db_conn):
    build(tmp_path)
    report = ingest(db_conn, tmp_path, LOC)
    got = {path.rsplit("/", 1)[-1]: row for path, row in rows(db_conn, LOC).items()}
    failed = {name: row["error"] for name, row in got.items() if row["status"] == "failed"}
    assert failed == {
        "empty.jpg": "empty file (0 bytes)",
        "truncated.jpg": "truncated JPEG: no end-of-image marker after the image data",
        "header_only.jpg": "truncated JPEG: the file ends inside a header segment",
        "text.jpg": "not an image: the file is text",
        "page.jpg": "not an image: the file is an HTML page",
        "bomb.jpg": "refused: 20000x20000 pixels (400 MP) is over the 100 MP limit "
        "(a decompression bomb, or not a camera frame)",
        "dangling.jpg": BROKEN_LINK,
    }
    ok = {name for name, row in got.items() if row["status"] == "ok"}
    assert ok == {"good.jpg", "png.jpg", "cmyk.jpg", "ir.jpg", "rotated.jpg", *NAMES}
    assert got["copy of good.jpg"]["status"] == "duplicate"
    assert got["copy of good.jpg"]["duplicate_of"] == got["good.jpg"]["id"]
    assert (got["png.jpg"]["format"], got["png.jpg"]["note"]) == (
        "PNG",
        "PNG content under a .jpg name",
    )
    assert got["cmyk.jpg"]["color_mode"] == "CMYK" and got["ir.jpg"]["color_mode"] == "L"
    rotated = got["rotated.jpg"]
    assert (rotated["width"], rotated["height"], rotated["orientation"]) == (48, 64, 6)
    assert got["good.jpg"]["camera_make"] == "Acme"
    assert got["good.jpg"]["captured_at_source"] == "exif_original"
    for name in NAMES:  # stored verbatim, under the location's original folder name
        assert f"{LOC}/DCIM/100MEDIA/{name}" in rows(db_conn, LOC)
    assert report.skipped == {"hidden_files": 1, "non_images": 2, "symlink_loops": 1}
    assert report.status_counts == {"ok": 8, "failed": 7, "duplicate": 1}
    assert sorted(report.failures) == sorted(
        (f"{LOC}/DCIM/100MEDIA/{name}", reason) for name, reason in failed.items()
    )
    assert ingest(db_conn, tmp_path, LOC).rows_written == 0  # stable on re-run


def test_pixel_limit_is_configurable(tmp_path, clean_db, db_conn):
    photos.write(tmp_path / "big" / "a.jpg", photos.jpeg_bytes(1, size=(120, 90)))
    ingest(db_conn, tmp_path, "big", max_pixels=10_000)
    (row,) = rows(db_conn, "big").values()
    assert row["status"] == "failed" and row["error"].startswith("refused: 120x90 pixels")


def test_corrupt_exif_keeps_the_image_with_a_note(tmp_path, clean_db, db_conn):
    data = bytearray(photos.jpeg_bytes(1, make="Acme", when=photos.datetime(2024, 1, 1)))
    at = data.index(b"Exif\x00\x00") + 6
    data[at : at + 2] = b"QQ"  # no byte-order mark
    photos.write(tmp_path / "exif" / "a.jpg", bytes(data))
    ingest(db_conn, tmp_path, "exif")
    (row,) = rows(db_conn, "exif").values()
    assert row["status"] == "ok" and row["camera_make"] is None
    assert row["note"] == "EXIF ignored: EXIF block has no TIFF byte-order mark"
    assert row["captured_at_source"] == "file_mtime"
