"""Locations read as the person named the folders ("East Gate") wherever a person reads them.

The review pages, the gallery, Camtrap DP's ``locationName`` and the herd survey show the folder
name; URLs, data and ``locationID`` keep the partition key.
"""

from __future__ import annotations

import csv
import re

import pytest
from starlette.testclient import TestClient

from deer_pipeline.db.connect import connect
from deer_pipeline.exports.camtrap_dp import write_camtrap_dp
from deer_pipeline.exports.gallery import write_gallery
from deer_pipeline.ingest.store import location_names
from deer_pipeline.review_app.app import ReviewApp, create_app
from deer_pipeline_tests.exports.herd_world import CREEK, EAST, MATCH, build_herd


@pytest.fixture
def world(clean_db, tmp_path):
    conn = connect(clean_db.data)
    built = build_herd(conn, tmp_path / "world")
    yield {**built, "conn": conn, "urls": clean_db, "root": tmp_path / "world"}
    conn.close()


def test_one_reader_gives_the_folder_names(world):
    key = world["keys"][EAST]
    assert key != EAST and " " not in key
    with world["conn"].cursor() as cur:
        assert location_names(cur) == {key: EAST, CREEK: CREEK}
        assert location_names(cur, [key]) == {key: EAST}
        cur.execute(
            "SELECT DISTINCT split_part(rel_path, '/', 1) FROM images WHERE location_key = %s",
            (key,),
        )
        assert cur.fetchall() == [(EAST,)]


def test_exports_show_folder_names_and_keep_keys(world, tmp_path):
    key = world["keys"][EAST]
    with world["conn"].cursor() as cur:
        write_camtrap_dp(cur, tmp_path / "dp")
        gallery = write_gallery(cur, world["root"], tmp_path / "reports")
    with (tmp_path / "dp" / "deployments.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["locationID"]: r for r in csv.DictReader(fh)}
    assert rows[key]["locationName"] == EAST and rows[key]["deploymentID"] == key
    assert rows[CREEK]["locationName"] == CREEK
    page = open(gallery["path"], encoding="utf-8").read()
    assert EAST in page and key not in page


def test_review_pages_show_folder_names_and_keep_keys_in_urls(world, tmp_path):
    key = world["keys"][EAST]
    review = ReviewApp(
        world["urls"].data,
        world["root"],
        tmp_path / "crops",
        "ann",
        hosts=("testserver",),
        match=MATCH,
    )
    with TestClient(create_app(review), follow_redirects=False) as client:
        queue = client.get("/")
        assert queue.status_code == 200 and key not in queue.text
        assert EAST in queue.text or CREEK in queue.text  # whichever pair comes first
        listing = client.get("/deer", params={"location": key})
        assert listing.status_code == 200
        assert f'<option value="{key}" selected>{EAST}</option>' in listing.text
        assert EAST in re.sub(r"<select.*?</select>", "", listing.text, flags=re.S)
        deer_id = re.search(r'href="/deer/(\d+)"', listing.text).group(1)
        page = client.get(f"/deer/{deer_id}")
        assert page.status_code == 200 and EAST in page.text and key not in page.text
    review.close()
