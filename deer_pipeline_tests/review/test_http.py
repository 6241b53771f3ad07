"""The review app over HTTP (Starlette's TestClient): pages, crops, 403, 404, 409 and the lock."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from deer_pipeline.db.connect import connect
from deer_pipeline.reid.store import lock_identities
from deer_pipeline.review_app.app import ReviewApp, create_app
from deer_pipeline_tests.review.conftest import MATCH, deer_of

ORIGIN = "http://testserver"


@pytest.fixture
def client(herd, tmp_path):
    review = ReviewApp(
        herd["urls"].data,
        herd["root"],
        tmp_path / "crops",
        "ann",
        hosts=("testserver",),
        match=MATCH,
        lock_timeout_s=0.5,
    )
    with TestClient(create_app(review), follow_redirects=False) as c:
        c.review = review
        yield c
    review.close()


def _form(html: str, form_id: str) -> dict[str, str]:
    block = re.search(rf'<form id="{form_id}".*?</form>', html, re.S).group(0)
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', block))


def test_pages_and_crops(client, herd):
    page = client.get("/")
    assert page.status_code == 200
    merge = _form(page.text, "merge")
    assert merge["answer"] == "merge" and merge["csrf"] == client.review.csrf
    left = int(merge["left"])
    assert client.get(f"/deer/{left}").status_code == 200
    listing = client.get("/deer", params={"location": "L1", "sex": "buck", "min": 3})
    assert listing.status_code == 200 and "Deer (2)" in listing.text
    crop = client.get(f"/crops/{herd['ids'][0]}.jpg")
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert crop.content[:2] == b"\xff\xd8"
    assert client.get("/crops/999999.jpg").status_code == 404
    assert client.get("/deer/999999").status_code == 404
    assert client.get("/crops/..%2F..%2Fetc%2Fpasswd.jpg").status_code == 404


def test_posts_need_token_origin_and_host(client, herd):
    fields = _form(client.get("/").text, "merge")
    before = deer_of(herd["conn"])
    no_token = {k: v for k, v in fields.items() if k != "csrf"}
    assert client.post("/decisions", data=no_token, headers={"Origin": ORIGIN}).status_code == 403
    wrong = {**fields, "csrf": "x" * 43}
    assert client.post("/decisions", data=wrong, headers={"Origin": ORIGIN}).status_code == 403
    foreign = client.post("/decisions", data=fields, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert client.post("/decisions", data=fields).status_code == 403  # no Origin, no Referer
    rebound = client.post(
        "/decisions", data=fields, headers={"Origin": "http://evil.example", "Host": "evil.example"}
    )
    assert rebound.status_code == 400  # a host the app does not serve
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert deer_of(herd["conn"]) == before
    ok = client.post("/decisions", data=fields, headers={"Referer": f"{ORIGIN}/?at=0"})
    assert ok.status_code == 303 and "Merged" in client.get(ok.headers["location"]).text


def test_unknown_deer_is_404_and_second_tab_is_409(client, herd):
    page = client.get("/").text
    merge, not_same = _form(page, "merge"), _form(page, "not_same")
    headers = {"Origin": ORIGIN}
    missing = {**merge, "left": "999999", "token": ""}
    assert client.post("/decisions", data=missing, headers=headers).status_code == 404
    assert client.post("/decisions", data=merge, headers=headers).status_code == 303
    second = client.post("/decisions", data=not_same, headers=headers)  # the other tab
    assert second.status_code == 409
    assert "changed since this page was shown" in second.text
    as_json = client.post(
        "/decisions", data=not_same, headers={**headers, "Accept": "application/json"}
    )
    assert as_json.status_code == 409 and as_json.json()["ok"] is False
    with herd["conn"].cursor() as cur:
        cur.execute("SELECT count(*) FROM deer_not_same")
        assert cur.fetchone()[0] == 0


def test_decision_during_an_identity_run_is_refused_then_accepted(client, herd):
    fields = _form(client.get("/").text, "merge")
    holder = connect(herd["urls"].data)
    try:
        with holder.cursor() as cur:
            lock_identities(cur)
        busy = client.post("/decisions", data=fields, headers={"Origin": ORIGIN})
        assert busy.status_code == 503 and "identity lock" in busy.text
        holder.rollback()
        done = client.post("/decisions", data=fields, headers={"Origin": ORIGIN})
        assert done.status_code == 303
    finally:
        holder.close()
    undo = {**_form(client.get("/").text, "undo")}
    undone = client.post(
        "/decisions", data=undo, headers={"Origin": ORIGIN, "Accept": "application/json"}
    )
    assert undone.status_code == 200 and undone.json()["result"]["undid"] == "merge"


def test_deer_page_split_and_class_forms(client, herd):
    table = deer_of(herd["conn"])
    deer_id = table[herd["ids"][0]]
    page = client.get(f"/deer/{deer_id}").text
    split = _form(page, "split")
    moved = [str(d) for d in herd["ids"][:2]]
    body = {**split, "into": "new", "detections": moved}
    done = client.post("/decisions", data=body, headers={"Origin": ORIGIN})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/deer/{deer_id}?")
    after = deer_of(herd["conn"])
    new = after[herd["ids"][0]]
    assert new != deer_id and after[herd["ids"][1]] == new and after[herd["ids"][2]] == deer_id
    page = client.get(f"/deer/{new}").text
    correct = {**_form(page, "correct"), "detection": moved[0], "class_name": "not-deer"}
    done = client.post("/decisions", data=correct, headers={"Origin": ORIGIN})
    assert done.status_code == 303
    assert herd["ids"][0] not in deer_of(herd["conn"])
    stale = client.post("/decisions", data=body, headers={"Origin": ORIGIN})  # an old tab
    assert stale.status_code == 409
