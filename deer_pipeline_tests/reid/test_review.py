"""Human review actions and their survival across re-runs."""

from __future__ import annotations

import pytest

from deer_pipeline.db.connect import connect
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.review import (
    ReviewError,
    correct_detection,
    list_deer,
    merge_deer,
    split_sightings,
)
from deer_pipeline_tests.reid.builders import Scene, animal, sightings, view

MATCH = MatchConfig(threshold=0.7)
BOX = (100, 100, 300, 250)


@pytest.fixture
def conn(clean_db):
    c = connect(clean_db.data)
    yield c
    c.close()


def _two_looks_of_one_doe(conn):
    """One doe whose two visits look too different for the matcher: two deer after a run."""
    scene = Scene("L1")
    scene.burst([[("doe", BOX, view(animal(1), 0.2, k))] for k in range(3)])
    scene.burst([[("doe", BOX, view(animal(2), 0.2, 10 + k))] for k in range(3)], minutes=90)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    return ids, table[ids[0]][0], table[ids[3]][0]


def test_manual_merge_survives_rerun(conn):
    ids, a, b = _two_looks_of_one_doe(conn)
    assert a != b
    result = merge_deer(conn, a, b)
    assert result["n_sightings"] == 6
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    assert {table[d] for d in ids} == {(a, "manual")}
    with conn.cursor() as cur:
        assert [(d["id"], d["n_sightings"]) for d in list_deer(cur)] == [(a, 6)]


def test_merge_refuses_conflicts_without_force(conn):
    scene = Scene("L1")
    scene.burst(
        [
            [
                ("doe", BOX, view(animal(1), 0.1, 0)),
                ("buck", (600, 100, 800, 250), view(animal(2), 0.1, 1)),
            ]
        ]
    )
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    with pytest.raises(ReviewError, match="buck"):
        merge_deer(conn, table[ids[0]][0], table[ids[1]][0])
    with pytest.raises(ReviewError, match="does not exist"):
        merge_deer(conn, table[ids[0]][0], 999999)


def test_correction_buck_to_doe_moves_the_sighting(conn):
    doe, buck = animal(3), animal(4)
    scene = Scene("L1")
    scene.burst([[("doe", BOX, view(doe, 0.2, k))] for k in range(3)])
    # The detector called the doe a buck in a later photo.
    scene.burst([[("buck", BOX, view(doe, 0.2, 10))]], minutes=60)
    scene.burst([[("buck", BOX, view(buck, 0.2, 20 + k))] for k in range(3)], minutes=120)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    wrong = ids[3]
    doe_id, buck_ids = table[ids[0]][0], {table[ids[3]][0], table[ids[4]][0]}
    assert doe_id not in buck_ids
    moved = correct_detection(conn, wrong, "doe", MATCH)
    assert moved["to_deer"] == doe_id
    assert sightings(conn)[wrong][0] == doe_id
    identify_location(conn, "L1", MATCH)  # the correction holds in later runs
    table = sightings(conn)
    assert table[wrong][0] == doe_id and table[wrong][1] != "manual"
    with conn.cursor() as cur:
        cur.execute("SELECT sex, n_sightings FROM deer ORDER BY id")
        assert sorted(cur.fetchall()) == [("buck", 3), ("doe", 4)]


def test_not_deer_leaves_identities(conn):
    scene = Scene("L1")
    scene.burst([[("doe", BOX, view(animal(5), 0.2, k))] for k in range(2)])
    scene.burst([[("fawn", BOX, view(animal(6), 0.2, 9))]], minutes=60)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    correct_detection(conn, ids[2], "not-deer")
    assert ids[2] not in sightings(conn)
    identify_location(conn, "L1", MATCH)
    assert ids[2] not in sightings(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT sex FROM deer")
        assert [r[0] for r in cur.fetchall()] == ["doe"]


def test_split_survives_rerun(conn):
    scene = Scene("L1")
    a = animal(7)
    look_alike = view(a, 0.5, 99)  # a different doe, similar enough for the matcher to merge
    for k, who in enumerate((a, a, look_alike)):
        scene.burst([[("doe", BOX, view(who, 0.2, 10 * k + j))] for j in range(2)], minutes=60 * k)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    assert len({d for d, _ in sightings(conn).values()}) == 1
    result = split_sightings(conn, ids[4:6])
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    assert {table[d] for d in ids[4:6]} == {(result["deer"], "manual")}
    assert {table[d][0] for d in ids[:4]} == {result["from"]}
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM review_log WHERE action = 'split'")
        assert cur.fetchone()[0] >= 1


def test_review_commands(conn, capsys):
    from deer_pipeline.cli import main
    from deer_pipeline.commands.deer import CORRECTION_CLASSES as CLI_CLASSES
    from deer_pipeline.reid.review import CORRECTION_CLASSES

    assert CLI_CLASSES == CORRECTION_CLASSES
    ids, a, b = _two_looks_of_one_doe(conn)
    assert main(["deer", "list"]) == 0
    assert "2 deer" in capsys.readouterr().out
    assert main(["deer", "merge", str(a), str(b)]) == 0
    assert f"merged deer {b} into deer {a}: 6 sightings" in capsys.readouterr().out
    assert main(["deer", "split", "--sighting", str(ids[0]), str(ids[1])]) == 0
    assert f"moved 2 sighting(s) from deer {a}" in capsys.readouterr().out
    assert main(["detection", "correct", str(ids[5]), "--class", "not-deer"]) == 0
    assert "is now not-deer" in capsys.readouterr().out
    assert main(["deer", "merge", str(a), "999999"]) == 2
    assert "does not exist" in capsys.readouterr().err
