"""Global identities against the real database: constraints, incremental runs, stable ids."""

from __future__ import annotations

import numpy as np
import pytest

from deer_pipeline.db.connect import connect
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.review import split_sightings
from deer_pipeline_tests.reid.builders import DIM, Scene, animal, sightings, view

MATCH = MatchConfig(threshold=0.7)
BOX = (100, 100, 300, 250)


@pytest.fixture
def conn(clean_db):
    c = connect(clean_db.data)
    yield c
    c.close()


def _deer_sizes(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT sex, n_sightings FROM deer ORDER BY sex, n_sightings")
        return cur.fetchall()


def test_not_the_same_deer_is_never_merged(conn):
    a = animal(1)
    scene = Scene("L1")
    scene.burst([[("doe", BOX, view(a, 0.2, k))] for k in range(3)])
    scene.burst([[("doe", BOX, view(a, 0.2, 10 + k))] for k in range(3)], minutes=600)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    assert len({d for d, _ in sightings(conn).values()}) == 1  # alike: one deer without a veto
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO deer_not_same (left_detections, right_detections, reviewer)"
            " VALUES (%s, %s, 'test')",
            (ids[:3], ids[3:]),
        )
    conn.commit()
    for _ in range(2):
        report = identify_location(conn, "L1", MATCH)
        table = sightings(conn)
        assert len({table[d][0] for d in ids[:3]}) == len({table[d][0] for d in ids[3:]}) == 1
        assert table[ids[0]][0] != table[ids[3]][0]
        assert report.deer_new == 2


def test_only_a_confident_sex_keeps_deer_apart(conn):
    same = animal(2)  # one appearance: only sex votes can separate
    scene = Scene("L1")
    scene.burst([[("doe", BOX, view(same, 0.05, k))] for k in range(3)])
    unsure = {"confidence": 0.5, "scores": {"doe": 0.45, "buck": 0.5, "fawn": 0.01}}
    scene.burst([[("buck", BOX, view(same, 0.05, 10), unsure)]], minutes=600)
    scene.burst([[("buck", BOX, view(same, 0.05, 20))]], minutes=1200)
    scene.burst([[("fawn", BOX, view(same, 0.05, 30))]], minutes=1800)
    ids = scene.write(conn)
    report = identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    assert table[ids[3]][0] == table[ids[0]][0]  # the unsure "buck" joins the doe
    assert len({table[i][0] for i in (ids[0], ids[4], ids[5])}) == 3
    assert _deer_sizes(conn) == [("buck", 1), ("doe", 4), ("fawn", 1)]
    assert report.sex_conflict_deer == 0


def test_new_location_joins_known_deer_and_rerun_changes_nothing(conn):
    a, b, c = animal(3), animal(4), animal(5)
    first = Scene("L1")
    first.burst([[("doe", BOX, view(a, 0.3, k))] for k in range(3)])
    first.burst([[("buck", BOX, view(b, 0.3, 10 + k))] for k in range(3)], minutes=600)
    ids1 = first.write(conn)
    identify_location(conn, "L1", MATCH)
    before = sightings(conn)
    second = Scene("L2")
    second.burst([[("doe", BOX, view(a, 0.3, 20 + k))] for k in range(2)], minutes=3000)
    second.burst([[("doe", BOX, view(c, 0.3, 30 + k))] for k in range(2)], minutes=3600)
    ids2 = second.write(conn)
    report = identify_location(conn, "L2", MATCH)
    assert (report.deer_matched, report.deer_new, report.deer_merged) == (1, 1, 0)
    assert report.deer_considered >= 1
    after = sightings(conn)
    assert {d: after[d] for d in ids1} == before  # the first location is untouched
    assert after[ids2[0]] == (before[ids1[0]][0], "match")
    assert after[ids2[2]][0] not in {before[i][0] for i in ids1}
    identify_location(conn, "L2", MATCH)
    assert sightings(conn) == after
    for loc in ("L1", "L2"):  # L1 again: its doe now matches the deer L2 holds, same ids
        identify_location(conn, loc, MATCH)
        assert {d: deer for d, (deer, _) in sightings(conn).items()} == {
            d: deer for d, (deer, _) in after.items()
        }


def test_deer_seen_together_elsewhere_never_merge(conn):
    twin = animal(6)  # two does that look alike, photographed together at L1
    first = Scene("L1")
    first.burst(
        [
            [
                ("doe", (50, 300, 200, 420), view(twin, 0.05, k)),
                ("doe", (900, 300, 1050, 420), view(twin, 0.05, 10 + k)),
            ]
            for k in range(3)
        ]
    )
    first.write(conn)
    identify_location(conn, "L1", MATCH)
    later = Scene("L2")  # one of them alone at L2: like both, it may join only one
    later.burst([[("doe", BOX, view(twin, 0.05, 20 + k))] for k in range(3)], minutes=3000)
    later.write(conn)
    report = identify_location(conn, "L2", MATCH)
    assert (report.deer_matched, report.deer_merged) == (1, 0)
    assert report.refused["same_frame"] >= 1
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT s.deer_id, x.image_id FROM sightings s"
            " JOIN detections x ON x.id = s.detection_id GROUP BY 1, 2 HAVING count(*) > 1) m"
        )
        assert cur.fetchone()[0] == 0
    assert _deer_sizes(conn) == [("doe", 3), ("doe", 6)]


def test_a_split_stays_split_when_new_evidence_arrives(conn):
    a = animal(7)
    look_alike = view(a, 0.5, 99)
    scene = Scene("L1")
    for k, who in enumerate((a, a, look_alike)):
        scene.burst([[("doe", BOX, view(who, 0.2, 10 * k + j))] for j in range(2)], minutes=600 * k)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    split = split_sightings(conn, ids[4:6])
    later = Scene("L2")
    between = view(a, 0.35, 500)  # close to both the doe and her look-alike
    later.burst([[("doe", BOX, view(between, 0.05, 600 + j))] for j in range(2)], minutes=5000)
    new_ids = later.write(conn)
    identify_location(conn, "L2", MATCH)
    table = sightings(conn)
    assert {table[d][0] for d in ids[:4]} == {split["from"]}
    assert {table[d] for d in ids[4:6]} == {(split["deer"], "manual")}
    assert {table[d][0] for d in new_ids} <= {split["from"], split["deer"]}
    assert len({d for d, _ in table.values()}) == 2


def _exact(u: np.ndarray, w: np.ndarray, cos: float) -> np.ndarray:
    return cos * u + np.sqrt(1 - cos * cos) * w


def test_minutes_apart_at_one_camera_is_evidence(conn):
    rng = np.random.default_rng(9)
    basis = np.linalg.qr(rng.normal(size=(DIM, 4)))[0].T  # orthonormal vectors
    match = MatchConfig(threshold=0.75, visit_bonus=0.03, visit_minutes=30)
    scene = Scene("L1")
    # Two pairs of tracklets at cosine 0.74, just below the threshold: one pair 5 minutes apart
    # (prior 0.03 * exp(-5/30) = 0.025), the other three days apart (no prior).
    scene.burst([[("doe", BOX, basis[0])]] * 2)
    scene.burst([[("doe", BOX, _exact(basis[0], basis[1], 0.74))]] * 2, minutes=5)
    scene.burst([[("doe", BOX, basis[2])]] * 2, minutes=100)
    scene.burst([[("doe", BOX, _exact(basis[2], basis[3], 0.74))]] * 2, minutes=100 + 3 * 1440)
    ids = scene.write(conn)
    identify_location(conn, "L1", match)
    table = sightings(conn)
    assert table[ids[0]][0] == table[ids[2]][0]
    assert table[ids[4]][0] != table[ids[6]][0]
    identify_location(conn, "L1", MatchConfig(threshold=0.75, visit_bonus=0.0))
    table = sightings(conn)
    assert table[ids[0]][0] != table[ids[2]][0]
