"""The queue without floors: pairs the old floors hid, learning from decisions, stray parts."""

from __future__ import annotations

import numpy as np
import pytest

from deer_pipeline.db.connect import connect
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.review import deer_state, merge_deer
from deer_pipeline.review_app.decide import Decision, decide
from deer_pipeline.review_app.learning import WORDS, likelihood_words
from deer_pipeline.review_app.queue import ProposalQueue
from deer_pipeline_tests.reid.builders import Scene, animal, sightings, view, walk
from deer_pipeline_tests.review.conftest import MATCH

OLD_PAIR_FLOOR, OLD_SINGLE_FLOOR = 0.7, 0.68  # the fixed floors the queue had before


def _herd(conn, animals: int, seed: int = 0) -> dict[str, list[int]]:
    """Each animal seen once by day and once at night (infrared): day and night look so unlike
    (cosine about 0.5) that identities found a deer for each visit. Returns name -> detections
    of (day visit, night visit)."""
    scene = Scene("L1")
    visits = []
    for a in range(animals):
        identity = animal(100 + seed + a)
        for night in (False, True):
            look = view(identity, 1.0, 1000 * (seed + 1) + 10 * a + int(night))
            visits.append((f"A{a}", night, look))
    minutes = 0
    for _name, night, look in visits:
        frames = [
            [("doe", box, view(look, 0.1, 7 * minutes + k), {"monochrome": night})]
            for k, box in enumerate(walk(100, 30, 3))
        ]
        scene.burst(frames, minutes=minutes)
        minutes += 600
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    out: dict[str, list[list[int]]] = {}
    for k, (name, _, _) in enumerate(visits):
        out.setdefault(name, []).append(ids[3 * k : 3 * k + 3])
    return out


def _deer(conn, detections) -> int:
    return sightings(conn)[detections[0]][0]


def _pairs(conn, queue: ProposalQueue) -> list:
    with conn.cursor() as cur:
        found = queue.proposals(cur)
    conn.rollback()
    return [p for p in found if p.kind == "pair"]


@pytest.fixture
def conn(clean_db):
    c = connect(clean_db.data)
    yield c
    c.close()


def test_a_true_pair_below_the_old_floors_is_proposed_first(conn):
    herd = _herd(conn, 3)
    queue = ProposalQueue(classes=False, strays=False)
    pairs = _pairs(conn, queue)
    day, night = (_deer(conn, herd["A0"][k]) for k in (0, 1))
    assert day != night  # identities left the day and night visits apart
    found = {p.deer: p for p in pairs}
    true_pairs = [tuple(sorted(_deer(conn, v) for v in herd[a])) for a in ("A0", "A1", "A2")]
    for pair in true_pairs:
        # the old queue never showed it: its similarity is below both floors
        assert found[pair].similarity < min(OLD_PAIR_FLOOR, OLD_SINGLE_FLOOR)
    # ... now each is asked, before any pair of two animals
    assert {p.deer for p in pairs[:3]} == set(true_pairs)
    assert all(p.words in {w for _, w in WORDS} for p in pairs)


def test_decisions_refit_the_model_and_a_held_out_true_pair_rises(conn):
    herd = _herd(conn, 5, seed=7)
    queue = ProposalQueue(classes=False, strays=False)
    held_out = tuple(sorted(_deer(conn, v) for v in herd["A4"]))
    before = {p.deer: p.probability for p in _pairs(conn, queue)}[held_out]
    with conn.cursor() as cur:
        version = queue.learner(cur, "emb-test")
        start = version.model
    conn.rollback()
    answered = 0
    for name in ("A0", "A1", "A2"):  # the person merges three day/night pairs ...
        pair = tuple(sorted(_deer(conn, v) for v in herd[name]))
        with conn.cursor() as cur:
            token = deer_state(cur, pair)
        conn.rollback()
        decide(conn, queue, Decision("merge", *pair, expect=token), "ann", MATCH)
        answered += 1
    wrong = (_deer(conn, herd["A3"][0]), _deer(conn, herd["A0"][0]))  # ... and one "not same"
    with conn.cursor() as cur:
        token = deer_state(cur, wrong)
    conn.rollback()
    decide(conn, queue, Decision("not_same", *wrong, expect=token), "ann", MATCH)
    after = {p.deer: p.probability for p in _pairs(conn, queue)}[held_out]
    assert after > before
    with conn.cursor() as cur:
        learner = queue.learner(cur, "emb-test")
        assert learner.model is not start and len(learner.examples) == answered + 1
        # stored with the model version it belongs to, so the next session starts from it
        cur.execute(
            "SELECT source, calibration->'pair_model'->'fitted'->>'review_examples'"
            " FROM model_calibrations WHERE model_version = 'emb-test'"
        )
        assert cur.fetchone() == ("review", "4")
    conn.rollback()
    fresh = ProposalQueue(classes=False, strays=False)
    again = {p.deer: p.probability for p in _pairs(conn, fresh)}[held_out]
    assert again == pytest.approx(after)


def test_stray_visit_is_proposed_and_split_off(conn):
    scene = Scene("L1")
    doe, other = animal(31), animal(32)
    for visit in range(3):
        frames = [
            [("doe", b, view(doe, 0.15, 10 * visit + k))] for k, b in enumerate(walk(100, 30, 3))
        ]
        scene.burst(frames, minutes=300 * visit)
    frames = [[("doe", b, view(other, 0.15, 90 + k))] for k, b in enumerate(walk(500, 30, 2))]
    scene.burst(frames, minutes=1200)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    mine, stray = table[ids[0]][0], table[ids[9]][0]
    assert stray != mine
    merge_deer(conn, mine, stray, force=True)  # a wrong join: another animal's visit inside
    queue = ProposalQueue(classes=False)
    with conn.cursor() as cur:
        (first,) = queue.proposals(cur, limit=1)
    conn.rollback()
    assert first.kind == "stray" and set(first.detections) == set(ids[9:])
    assert first.left == mine and first.probability > 0.5
    assert first.words == likelihood_words(first.probability, stray=True)
    with conn.cursor() as cur:
        token = deer_state(cur, [mine])
    conn.rollback()
    result = decide(
        conn,
        queue,
        Decision("split", mine, detections=first.detections, expect=token),
        "ann",
        MATCH,
    )
    table = sightings(conn)
    assert {table[d][0] for d in ids[:9]} == {mine}
    assert {table[d][0] for d in ids[9:]} == {result["deer"]} != {mine}
    with conn.cursor() as cur:  # learnt as "not the same animal"; not proposed again
        assert queue.learner(cur, "emb-test").examples[f"split:{result['log']}"][0] == 0
        keys = {p.key for p in queue.proposals(cur)}
    assert first.key not in keys
    assert np.isfinite(first.similarity)


def test_doubtful_class_is_asked_until_a_person_answers(conn):
    scene = Scene("L1")
    look = animal(41)
    doubtful = {"scores": {"doe": 0.5, "buck": 0.45, "fawn": 0.05}}
    frames = [[("doe", b, view(look, 0.1, k))] for k, b in enumerate(walk(100, 30, 2))]
    frames.append([("doe", (160, 300, 360, 450), view(look, 0.1, 9), doubtful)])
    scene.burst(frames)
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)  # an empty review_log: nothing decided yet
    queue = ProposalQueue()
    with conn.cursor() as cur:
        asked = [p for p in queue.proposals(cur) if p.kind == "class"]
    conn.rollback()
    assert [p.detection for p in asked] == [ids[2]]
    assert asked[0].score == pytest.approx(1 - 0.5 / 1.0)  # P(the detector's class is wrong)
    decide(conn, queue, Decision("class", detection=ids[2], class_name="doe"), "ann", MATCH)
    with conn.cursor() as cur:
        assert [p for p in queue.proposals(cur) if p.kind == "class"] == []
