import os

import pytest

from deer_pipeline.ingest.fingerprint import fingerprint_location
from deer_pipeline.ingest.hashing import StillWriting, read_whole
from deer_pipeline.ingest.scan import FileEntry, scan_location

from . import photos


def test_walk_nested_folders_skips_hidden_and_non_images_and_stops_at_loops(tmp_path):
    loc = tmp_path / "Ridge #2"
    photos.write(loc / "DCIM" / "100MEDIA" / "IMG_0001.JPG", photos.jpeg_bytes(1))
    photos.write(loc / "DCIM" / "101MEDIA" / "IMG_0002.jpeg", photos.jpeg_bytes(2))
    photos.write(loc / "top.jpg", photos.jpeg_bytes(3))
    photos.write(loc / ".hidden.jpg", b"x")
    photos.write(loc / ".Trashes" / "old.jpg", b"x")
    photos.write(loc / "__MACOSX" / "._top.jpg", b"x")
    photos.write(loc / "notes.txt", b"x")
    photos.write(loc / "DCIM" / "CLIP0001.AVI", b"x")
    os.symlink("..", loc / "DCIM" / "100MEDIA" / "up")  # loop back to DCIM
    os.symlink("100MEDIA", loc / "DCIM" / "again")  # a second path to a scanned folder
    os.symlink("self.jpg", loc / "self.jpg")  # a link to itself (ELOOP)
    os.symlink("nowhere.jpg", loc / "gone.jpg")
    scan = scan_location(tmp_path, "Ridge #2")
    assert [f.rel_path for f in scan.files] == [
        "Ridge #2/DCIM/100MEDIA/IMG_0001.JPG",
        "Ridge #2/DCIM/101MEDIA/IMG_0002.jpeg",
        "Ridge #2/top.jpg",
    ]
    assert scan.broken_links == ["Ridge #2/gone.jpg"]
    assert scan.skipped == {
        "hidden_files": 1,
        "hidden_dirs": 2,
        "non_images": 2,
        "symlink_loops": 2,
        "repeated_dirs": 1,
    }
    assert any("symlink loop" in note and "/up" in note for note in scan.notes)


def test_missing_location_is_reported_not_raised(tmp_path):
    scan = scan_location(tmp_path, "nope")
    assert not scan.found and scan.files == []


def test_fingerprint_moves_on_add_delete_and_rewrite(tmp_path):
    loc = tmp_path / "loc"
    photos.write(loc / "a.jpg", photos.jpeg_bytes(1))
    first = fingerprint_location(tmp_path, "loc")
    assert fingerprint_location(tmp_path, "loc") == first
    photos.write(loc / "b.jpg", photos.jpeg_bytes(2))
    second = fingerprint_location(tmp_path, "loc")
    assert second.digest != first.digest and second.files == 2
    (loc / "b.jpg").unlink()
    third = fingerprint_location(tmp_path, "loc")
    assert third.digest == first.digest and third.newest_ctime_ns >= second.newest_ctime_ns
    assert not third.settled(60) and third.settled(0)


def test_read_notices_a_file_that_changed_since_the_scan(tmp_path):
    path = photos.write(tmp_path / "a.jpg", b"12345")
    st = path.stat()
    entry = FileEntry("loc/a.jpg", str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert read_whole(entry, 100) == b"12345"
    with open(path, "ab") as handle:  # the copy goes on
        handle.write(b"678")
    with pytest.raises(StillWriting):
        read_whole(entry, 100)
