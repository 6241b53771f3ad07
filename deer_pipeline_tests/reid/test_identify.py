"""Identity runs on hand-built scenes against the real embedded PostgreSQL."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from deer_pipeline.db.connect import connect
from deer_pipeline.reid.identify import choose_model_version, identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline_tests.reid.builders import EMB_VERSION, Scene, animal, sightings, view, walk

MATCH = MatchConfig(threshold=0.7)


@pytest.fixture
def conn(clean_db):
    c = connect(clean_db.data)
    yield c
    c.close()


def _deer(conn, detection_ids, table):
    return {table[d][0] for d in detection_ids}


def test_two_deer_in_one_burst_stay_two(conn):
    a, b = animal(1), animal(2)
    scene = Scene("L1")
    left, right = walk(100, 40, 5), walk(500, -40, 5)  # they walk towards each other
    scene.burst(
        [
            [("doe", left[k], view(a, 0.3, k)), ("doe", right[k], view(b, 0.3, 10 + k))]
            for k in range(5)
        ]
    )
    ids = scene.write(conn)
    report = identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    assert report.tracklets == 2 and report.deer_new == 2
    assert len(_deer(conn, ids[0::2], table)) == 1
    assert len(_deer(conn, ids[1::2], table)) == 1
    assert _deer(conn, ids[0::2], table) != _deer(conn, ids[1::2], table)
    methods = sorted(m for _, m in table.values())
    assert methods == ["burst"] * 8 + ["new"] * 2


def test_doe_and_buck_never_merge(conn):
    same = animal(3)  # identical appearance: only the sex constraint keeps them apart
    scene = Scene("L1")
    scene.burst([[("doe", (100, 100, 300, 250), view(same, 0.05, 1))]] * 3)
    scene.burst([[("buck", (100, 100, 300, 250), view(same, 0.05, 2))]] * 3, minutes=30)
    scene.burst(
        [
            [
                ("doe", (100, 100, 300, 250), view(same, 0.05, 3)),
                ("buck", (110, 100, 310, 250), view(same, 0.05, 4)),
            ]
        ]
        * 3,
        minutes=60,
    )
    scene.write(conn)
    identify_location(conn, "L1", MATCH)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT d.sex, count(DISTINCT d.id), count(*) FROM sightings s"
            " JOIN deer d ON d.id = s.deer_id"
            " JOIN detections x ON x.id = s.detection_id GROUP BY d.sex ORDER BY 1"
        )
        assert cur.fetchall() == [("buck", 1, 6), ("doe", 1, 6)]
        cur.execute(
            "SELECT count(*) FROM sightings s JOIN deer d ON d.id = s.deer_id"
            " JOIN detections x ON x.id = s.detection_id WHERE x.class_name <> d.sex"
        )
        assert cur.fetchone()[0] == 0


def test_gallery_is_running_mean_and_rerun_is_stable(conn):
    a = animal(4)
    scene = Scene("L1")
    for k in range(4):
        scene.burst(
            [[("doe", (100, 100, 300, 250), view(a, 0.4, 10 * k + j))] for j in range(3)],
            minutes=60 * k,
        )
    scene.write(conn)
    first = identify_location(conn, "L1", MATCH)
    assert first.deer_new == 1 and first.tracklets_matched == 3
    with conn.cursor() as cur:
        cur.execute("SELECT id, n_sightings, embedding_count, first_seen, last_seen FROM deer")
        ((deer_id, n, count, first_seen, last_seen),) = cur.fetchall()
        assert n == count == 12 and last_seen > first_seen
        cur.execute("SELECT embedding::text FROM deer")
        gallery = np.array(cur.fetchone()[0][1:-1].split(","), dtype=np.float32)
        cur.execute(
            "SELECT embedding::text FROM embeddings WHERE model_version = %s", (EMB_VERSION,)
        )
        mean = np.mean([np.array(r[0][1:-1].split(","), np.float32) for r in cur.fetchall()], 0)
    assert np.dot(gallery, mean / np.linalg.norm(mean)) > 0.999
    before = sightings(conn)
    second = identify_location(conn, "L1", MATCH)
    assert sightings(conn) == before
    assert second.removed_sightings == 12 and second.deer_new == 1


def test_locations_identified_at_once_share_one_deer(clean_db):
    a = animal(5)
    conns = [connect(clean_db.data) for _ in range(2)]
    for i, c in enumerate(conns):
        scene = Scene(f"L{i}")
        scene.burst([[("buck", (100, 100, 300, 250), view(a, 0.3, 10 * i + j))] for j in range(3)])
        scene.write(c)
    threads = [
        threading.Thread(target=identify_location, args=(c, f"L{i}", MATCH))
        for i, c in enumerate(conns)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with conns[0].cursor() as cur:
        cur.execute("SELECT count(*), sum(n_sightings) FROM deer")
        assert cur.fetchone() == (1, 6)
    for c in conns:
        c.close()


def test_same_frame_never_joins_one_deer(conn):
    a = animal(6)
    scene = Scene("L1")
    # Two look-alikes far apart in the same frames: the tracklets stay apart, and the second
    # must not join the deer the first founded even though it is similar enough.
    scene.burst(
        [
            [
                ("doe", (50, 300, 200, 420), view(a, 0.2, k)),
                ("doe", (900, 300, 1050, 420), view(a, 0.2, 10 + k)),
            ]
            for k in range(3)
        ]
    )
    scene.write(conn)
    identify_location(conn, "L1", MATCH)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT s.deer_id, x.image_id FROM sightings s"
            " JOIN detections x ON x.id = s.detection_id GROUP BY 1, 2"
            " HAVING count(*) > 1) m"
        )
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM deer")
        assert cur.fetchone()[0] == 2


def test_gallery_follows_a_new_embedding_model(conn):
    a = animal(8)
    ids = []
    for loc in ("L1", "L2"):
        scene = Scene(loc)
        scene.burst([[("doe", (100, 100, 300, 250), view(a, 0.3, len(ids) + k))] for k in range(2)])
        ids += scene.write(conn)
    identify_location(conn, "L1", MATCH, model_version=EMB_VERSION)
    with conn.cursor() as cur:  # the detections get re-embedded by a new model
        cur.execute(
            "INSERT INTO embeddings (detection_id, model_version, embedding)"
            " SELECT detection_id, 'emb-v2', embedding FROM embeddings"
        )
    conn.commit()
    with conn.cursor() as cur:
        assert choose_model_version(cur, "L2") == EMB_VERSION  # a tie: by name
        assert choose_model_version(cur, "L2", preferred="emb-v2") == "emb-v2"
    report = identify_location(conn, "L2", MATCH, preferred_version="emb-v2")
    assert report.deer_new == 0 and report.deer_matched == 1
    with conn.cursor() as cur:
        cur.execute("SELECT model_version, n_sightings FROM deer")
        assert cur.fetchall() == [("emb-v2", 4)]
