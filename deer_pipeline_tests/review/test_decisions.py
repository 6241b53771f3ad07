"""Review decisions as data: not-the-same, undo, state tokens, the lock, and later runs."""

from __future__ import annotations

import threading

import pytest

from deer_pipeline.db.connect import connect
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.review import (
    DecisionConflict,
    IdentityBusy,
    ReviewError,
    deer_state,
    last_reviewed,
    undo_last,
)
from deer_pipeline.reid.store import lock_identities
from deer_pipeline.review_app.decide import Decision, apply_decision
from deer_pipeline.review_app.queue import ProposalQueue
from deer_pipeline_tests.review.conftest import MATCH, deer_of


def _pairs(conn) -> list[tuple[int, int]]:
    with conn.cursor() as cur:
        found = ProposalQueue(classes=False).proposals(cur)
    conn.rollback()
    return [p.deer for p in found if p.kind == "pair"]


def _animal_deer(herd) -> dict[str, set[int]]:
    table = deer_of(herd["conn"])
    out: dict[str, set[int]] = {}
    for det, name in zip(herd["ids"], herd["who"], strict=True):
        out.setdefault(name, set()).add(table[det])
    return out


def _decide(conn, answer, pair, reviewer="ann", **kw):
    with conn.cursor() as cur:
        token = deer_state(cur, pair)
    conn.rollback()
    return apply_decision(
        conn, Decision(answer, pair[0], pair[1], expect=token, **kw), reviewer, MATCH
    )


def test_queue_proposes_the_fragments_first(herd):
    animals = _animal_deer(herd)
    assert [len(animals[k]) for k in "ABC"] == [2, 2, 1]
    pairs = _pairs(herd["conn"])
    fragments = {tuple(sorted(animals["A"])), tuple(sorted(animals["B"]))}
    assert set(pairs[:2]) == fragments
    # no floor and any sex: doe A and buck B are asked too (the detector's class is often
    # wrong), ranked after the fragments; nothing is paired with itself
    cross = [p for p in pairs if set(p) & animals["A"] and set(p) & animals["B"]]
    assert cross and min(pairs.index(p) for p in cross) >= 2
    assert all(a != b for a, b in pairs)


def test_merge_not_same_and_undo_survive_later_runs(herd):
    conn = herd["conn"]
    animals = _animal_deer(herd)
    a_pair = tuple(sorted(animals["A"]))
    merged = _decide(conn, "merge", a_pair)
    assert merged["action"] == "merge" and merged["n_sightings"] == 6
    b_pair = tuple(sorted(animals["B"]))
    kept = _decide(conn, "not_same", b_pair)  # wrong, but a person may say so
    assert kept["action"] == "not_same"
    with conn.cursor() as cur:
        cur.execute("SELECT reviewer, cardinality(left_detections) FROM deer_not_same")
        assert cur.fetchall() == [("ann", 3)]
    conn.rollback()
    assert b_pair not in _pairs(conn)
    for _ in range(2):  # later runs keep both decisions, and the queue still remembers
        identify_location(conn, "L1", MATCH)
        now = _animal_deer(herd)
        assert len(now["A"]) == 1 and len(now["B"]) == 2
        assert tuple(sorted(now["B"])) not in _pairs(conn)
    undone = undo_last(conn, reviewer="ann")
    assert undone["undid"] == "not_same"
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM deer_not_same")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    assert tuple(sorted(_animal_deer(herd)["B"])) in _pairs(conn)
    assert undo_last(conn, reviewer="ann")["undid"] == "merge"
    assert _animal_deer(herd) == animals  # the same deer ids as before the merge
    with pytest.raises(ReviewError, match="no decision left"):
        undo_last(conn, reviewer="ann")
    with conn.cursor() as cur:
        assert last_reviewed(cur)["decisions"] == 2 and last_reviewed(cur)["undone"] == 2


def test_second_tab_gets_a_conflict_not_a_silent_loss(herd):
    conn = herd["conn"]
    pair = tuple(sorted(_animal_deer(herd)["A"]))
    with conn.cursor() as cur:
        token = deer_state(cur, pair)
    conn.rollback()
    apply_decision(conn, Decision("merge", *pair, expect=token), "tab1")
    with pytest.raises(DecisionConflict, match="changed since"):
        apply_decision(conn, Decision("not_same", *pair, expect=token), "tab2")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM deer_not_same")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT reviewer, action FROM review_log ORDER BY id")
        assert cur.fetchall() == [("tab1", "merge")]


def test_decision_waits_for_a_run_holding_the_lock_then_refuses(herd):
    conn = herd["conn"]
    pair = tuple(sorted(_animal_deer(herd)["A"]))
    holder = connect(herd["urls"].data)
    try:
        with holder.cursor() as cur:
            lock_identities(cur)  # as deer_identities does, for its whole transaction
        with pytest.raises(IdentityBusy, match="identity lock"):
            apply_decision(conn, Decision("merge", *pair), "ann", lock_timeout_s=0.3)
        assert len(_animal_deer(herd)["A"]) == 2  # nothing recorded
        released = threading.Timer(0.5, holder.rollback)
        released.start()
        result = apply_decision(conn, Decision("merge", *pair), "ann", lock_timeout_s=30)
        released.join()
        assert result["action"] == "merge"
    finally:
        holder.close()


def test_class_correction_split_into_another_deer_and_undo(herd):
    conn = herd["conn"]
    animals = _animal_deer(herd)
    c_deer = next(iter(animals["C"]))
    a1, a2 = sorted(animals["A"])
    det = herd["ids"][herd["who"].index("C")]
    moved = apply_decision(conn, Decision("split", c_deer, a1, detections=(det,)), "ann")
    assert moved["deer"] == a1 and deer_of(conn)[det] == a1
    fixed = apply_decision(conn, Decision("class", detection=det, class_name="fawn"), "ann", MATCH)
    assert fixed["from_deer"] == a1 and fixed["to_deer"] not in (a1, a2)
    identify_location(conn, "L1", MATCH)
    with conn.cursor() as cur:
        cur.execute("SELECT class_name, reviewer FROM detection_corrections")
        assert cur.fetchall() == [("fawn", "ann")]
    conn.rollback()
    # the run left the detection where the correction put it: undo restores both
    assert undo_last(conn, reviewer="ann")["undid"] == "correct"
    assert deer_of(conn)[det] == a1
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM detection_corrections")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    # another reviewer builds on ann's split: ann can no longer undo it
    apply_decision(conn, Decision("split", a1, detections=(det,)), "bob")
    with pytest.raises(DecisionConflict, match="cannot undo the split"):
        undo_last(conn, reviewer="ann")
    assert undo_last(conn, reviewer="bob")["undid"] == "split"
    assert undo_last(conn, reviewer="ann")["undid"] == "split"
    assert deer_of(conn)[det] == c_deer


def test_cross_sex_merge_says_the_class_and_no_deer_removes_a_deer(herd):
    conn = herd["conn"]
    animals = _animal_deer(herd)
    doe, buck = min(animals["A"]), min(animals["B"])
    merged = _decide(conn, "merge", (doe, buck), class_name="doe")
    assert merged["class"] == "doe" and merged["corrected"] == 3
    c_deer = next(iter(animals["C"]))
    gone = apply_decision(conn, Decision("not_deer", c_deer), "ann")
    assert gone["detections"] == 3
    identify_location(conn, "L1", MATCH)  # a later run keeps both decisions
    table = deer_of(conn)
    c_ids = [d for d, w in zip(herd["ids"], herd["who"], strict=True) if w == "C"]
    assert not set(c_ids) & set(table)
    with conn.cursor() as cur:
        cur.execute("SELECT class_name, count(*) FROM detection_corrections GROUP BY 1 ORDER BY 1")
        assert cur.fetchall() == [("doe", 3), ("not-deer", 3)]
        cur.execute("SELECT sex FROM deer WHERE id = %s", (merged["deer"],))
        assert cur.fetchone() == ("doe",)
    conn.rollback()
    assert undo_last(conn, reviewer="ann")["undid"] == "correct"
    assert undo_last(conn, reviewer="ann")["undid"] == "merge"
    assert _animal_deer(herd) == animals
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM detection_corrections")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT sex FROM deer WHERE id = %s", (buck,))
        assert cur.fetchone() == ("buck",)


def test_merge_of_duplicate_boxes_keeps_the_best_box_per_photo(clean_db):
    from deer_pipeline_tests.reid.builders import Scene, animal, view, walk

    conn = connect(clean_db.data)
    try:
        scene = Scene("L1")
        look = animal(9)
        frames = []
        for k, box in enumerate(walk(100, 30, 3)):
            twin = (box[0] + 4, box[1] + 2, box[2] + 4, box[3] + 2)  # the detector boxed it twice
            frames.append(
                [("doe", box, view(look, 0.1, k)), ("buck", twin, view(look, 0.1, 10 + k))]
            )
        scene.burst(frames)
        ids = scene.write(conn)
        identify_location(conn, "L1", MATCH)
        pairs = _pairs(conn)
        assert len(pairs) == 1
        with conn.cursor() as cur:
            queue = ProposalQueue(classes=False, strays=False)
            (proposal,) = queue.proposals(cur)
            assert proposal.shared_photos and proposal.cross_sex
        conn.rollback()
        result = _decide(conn, "merge", pairs[0], class_name="doe")
        assert result["n_sightings"] == 3
        with conn.cursor() as cur:
            cur.execute(
                "SELECT detection_id FROM detection_corrections WHERE class_name = 'not-deer'"
            )
            dropped = sorted(r[0] for r in cur.fetchall())
        conn.rollback()
        assert len(dropped) == 3 and set(dropped) < set(ids)
        identify_location(conn, "L1", MATCH)
        assert len(set(deer_of(conn).values())) == 1 and len(deer_of(conn)) == 3
    finally:
        conn.close()
