import csv
from datetime import datetime

import pytest

from deer_pipeline.ingest.exif import ExifError, clean_text, parse_exif
from deer_pipeline.ingest.inspect import describe_image
from deer_pipeline.ingest.makernotes import makernote_serial
from deer_pipeline.ingest.timestamps import capture_time, parse_exif_datetime, time_from_filename

from . import photos


def test_real_photos_match_truth(camera_traps):
    with open(camera_traps / "truth.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    assert len(truth) == 75
    for row in truth:
        data = (camera_traps / row["path"]).read_bytes()
        facts = describe_image(data, row["path"].rsplit("/", 1)[-1], 0, 100_000_000)
        assert (facts.width, facts.height) == (int(row["width"]), int(row["height"])), row["path"]
        assert (facts.make or "", facts.model or "") == (row["exif_make"], row["exif_model"])
        if row["exif_datetime_original"]:
            expected = datetime.strptime(row["exif_datetime_original"], "%Y:%m:%d %H:%M:%S")
            assert facts.captured.value == expected and facts.captured.source == "exif_original"
        else:
            assert facts.captured.source == "file_mtime"
        assert facts.format == "JPEG" and facts.note is None


def test_reconyx_hyperfire_serial_from_maker_note(camera_traps):
    data = (camera_traps / "southwest" / "testdataowl.JPG").read_bytes()
    assert describe_image(data, "testdataowl.JPG", 0, 10**8).serial == "P900FF03149458"


def test_maker_note_layouts():
    ultra = bytearray(b"RECONYXUF\x00" + bytes(200))
    ultra[0x4B : 0x4B + 8] = b"UF123456"
    assert makernote_serial("RECONYX", bytes(ultra)) == "UF123456"
    ultra[0x4B : 0x4B + 8] = bytes(8)
    ultra[0x5A : 0x5A + 10] = b"North Gate"
    assert makernote_serial("RECONYX", bytes(ultra)) == "North Gate"  # label as fallback
    hyper = bytearray(b"\x01\xf1" + bytes(200))
    hyper[42:52] = "HF12X".encode("utf-16-le")
    assert makernote_serial("RECONYX", bytes(hyper)) == "HF12X"
    assert makernote_serial("BUSHNELL", bytes(hyper)) is None  # no text prefix: trust the Make
    assert makernote_serial("RECONYX", b"\x01\xf1") is None  # cut off
    assert makernote_serial("SY", b"\x00" * 100) is None


def test_body_serial_number_and_text_cleaning():
    tags = photos.exif(make="BolyMedia      ", model="\x00\x00\x00")
    tags.get_ifd(0x8769)[0xA431] = "SN-42\x00"
    fields = parse_exif(tags.tobytes())
    assert (fields.make, fields.model, fields.serial) == ("BolyMedia", None, "SN-42")
    assert clean_text(b"PC900 PROFESSIONAL\x00junk") == "PC900 PROFESSIONAL"


def test_broken_exif_raises_exif_error():
    good = photos.exif(make="X", when=datetime(2024, 1, 1)).tobytes()
    with pytest.raises(ExifError):
        parse_exif(b"XX" + good[2:])
    with pytest.raises(ExifError):
        parse_exif(good[:10])  # the directory is cut off
    assert parse_exif(None).make is None


def test_exif_datetime_parsing():
    assert parse_exif_datetime("2014:07:01 15:22:09") == datetime(2014, 7, 1, 15, 22, 9)
    assert parse_exif_datetime("2014-07-01T15:22:09\x00") == datetime(2014, 7, 1, 15, 22, 9)
    assert parse_exif_datetime("0000:00:00 00:00:00") is None
    assert parse_exif_datetime("2014:13:01 15:22:09") is None
    assert parse_exif_datetime("") is None


@pytest.mark.parametrize(
    ("name", "expected", "exact"),
    [
        ("RIDGE_20210527_124759.JPG", datetime(2021, 5, 27, 12, 47, 59), True),
        ("2021_05_27_12_47_59.jpg", datetime(2021, 5, 27, 12, 47, 59), True),
        ("2021-05-27-12-47-59(3).jpg", datetime(2021, 5, 27, 12, 47, 59), True),
        ("IMG_20210527124759.jpg", datetime(2021, 5, 27, 12, 47, 59), True),
        ("B012_2021-05-27_human.jpg", datetime(2021, 5, 27), False),
        ("2021-12-07_12080069_rabbit.JPG", datetime(2021, 12, 7), False),
        ("EK000001.JPG", None, None),
        ("IMAG0104.JPG", None, None),
        ("19991340_120000.jpg", None, None),  # month 13: not a date
    ],
)
def test_filename_patterns(name, expected, exact):
    found = time_from_filename(name)
    assert (found is None) if expected is None else found == (expected, exact)


def test_capture_time_priority():
    mtime = int(datetime(2022, 2, 2, 2, 2, 2).timestamp() * 1e9)
    name = "CAM_20200101_000000.jpg"
    original = capture_time("2019:01:01 01:01:01", "2018:01:01 01:01:01", name, mtime)
    assert original.source == "exif_original" and original.value.year == 2019
    assert capture_time(None, "2018:01:01 01:01:01", name, mtime).source == "exif_datetime"
    assert capture_time("garbage", None, name, mtime).source == "filename"
    fallback = capture_time(None, None, "IMG_0001.jpg", mtime)
    assert fallback == type(fallback)(datetime(2022, 2, 2, 2, 2, 2), "file_mtime", False)


def test_an_mtime_no_datetime_can_hold_gives_no_capture_time():
    assert capture_time(None, None, "IMG_0001.jpg", 10**30) is None
    facts = describe_image(photos.jpeg_bytes(1), "IMG_0001.jpg", 10**30, 10**8)
    assert facts.captured is None and facts.width == 64
