"""Identities with the pair model: a day/night pair joined, constraints kept, decisions learnt."""

from __future__ import annotations

import numpy as np
import pytest

from deer_pipeline.assets.identities import IdentityConfig, report_metadata
from deer_pipeline.db.connect import connect
from deer_pipeline.reid.calibration import Calibration
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.pair_evidence import (
    deer_sides,
    labelled_examples,
    labelled_pairs,
    refit_on_decisions,
)
from deer_pipeline.reid.pair_model import FEATURES, PairModel, feature_matrix
from deer_pipeline.reid.review import merge_deer, not_same
from deer_pipeline.reid.vectors import normalise_rows
from deer_pipeline_tests.reid.builders import EMB_VERSION, Scene, animal, sightings, view, walk

MATCH = MatchConfig(threshold=0.7)
WITH_PAIRS = MatchConfig(threshold=0.7, pair_join_probability=0.9)


def hand_model() -> PairModel:
    """A model that trusts a middling cosine across day and night, and not within one condition.

    logit = 30 * average_cosine - 18 + 12 * has_day_night - 12 * has_day_day (unstandardised).
    """
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("average_cosine")] = 30.0
    weights[FEATURES.index("has_day_night")] = 12.0
    weights[FEATURES.index("has_day_day")] = -12.0
    n = len(FEATURES)
    return PairModel(weights, -18.0, np.zeros(n), np.ones(n))


def night_look(identity: np.ndarray, seed: int) -> np.ndarray:
    """The same animal under infrared: cosine about 0.5 to its day look."""
    other = animal(seed)
    return normalise_rows((0.5 * identity + 0.866 * other)[None])[0]


@pytest.fixture
def conn(clean_db):
    c = connect(clean_db.data)
    yield c
    c.close()


def day_night_scene(location: str = "L1") -> tuple[Scene, dict[str, slice]]:
    """Doe A by day and by night (other bursts), doe B by day: B never meets A's night look."""
    a, b = animal(11), animal(12)
    a_night = night_look(a, 13)
    scene = Scene(location)
    day = {"monochrome": False}
    night = {"monochrome": True}
    scene.burst([[("doe", box, view(a, 0.2, k), day)] for k, box in enumerate(walk(100, 30, 3))])
    scene.burst(
        [
            [("doe", box, view(a_night, 0.2, 10 + k), night)]
            for k, box in enumerate(walk(100, 30, 3))
        ],
        minutes=600,
    )
    scene.burst(
        [[("doe", box, view(b, 0.2, 20 + k), day)] for k, box in enumerate(walk(700, -30, 3))],
        minutes=1200,
    )
    return scene, {"a_day": slice(0, 3), "a_night": slice(3, 6), "b": slice(6, 9)}


def deer_of(table, ids) -> set[int]:
    return {table[d][0] for d in ids}


def test_threshold_alone_leaves_day_and_night_apart_and_the_pair_model_joins_them(conn):
    scene, part = day_night_scene()
    ids = scene.write(conn)
    report = identify_location(conn, "L1", MATCH, pair_model=hand_model())
    table = sightings(conn)
    assert report.pair_model_joins == 0  # no cut configured: no pair pass
    assert deer_of(table, ids[part["a_day"]]) != deer_of(table, ids[part["a_night"]])
    report = identify_location(conn, "L1", WITH_PAIRS, pair_model=hand_model())
    table = sightings(conn)
    assert report.pair_model_joins == 1
    assert len(deer_of(table, ids[part["a_day"]] + ids[part["a_night"]])) == 1
    assert deer_of(table, ids[part["b"]]).isdisjoint(deer_of(table, ids[part["a_day"]]))
    metadata = report_metadata(report)
    assert metadata["pair_model_joins"] == 1
    assert metadata["pair_model_candidates"] >= 1


def test_the_pair_model_joins_across_locations(conn):
    scene, part = day_night_scene("L1")
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)  # L1 alone, no pair pass: A splits in two
    a = animal(11)
    other = Scene("L2")
    other.burst(
        [[("doe", box, view(night_look(a, 13), 0.2, 40 + k), {"monochrome": True})]
         for k, box in enumerate(walk(100, 30, 3))],
        minutes=3000,
    )  # fmt: skip
    more = other.write(conn)
    report = identify_location(conn, "L2", WITH_PAIRS, pair_model=hand_model())
    table = sightings(conn)
    assert report.pair_model_joins >= 1
    assert len(deer_of(table, ids[part["a_day"]] + more)) == 1


def test_never_across_a_not_same_decision(conn):
    scene, part = day_night_scene()
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    day, night = (deer_of(table, ids[part[k]]).pop() for k in ("a_day", "a_night"))
    not_same(conn, day, night, reviewer="test")
    report = identify_location(conn, "L1", WITH_PAIRS, pair_model=hand_model())
    table = sightings(conn)
    assert report.pair_model_joins == 0
    assert deer_of(table, ids[part["a_day"]]) != deer_of(table, ids[part["a_night"]])


def test_never_two_boxes_of_one_frame(conn):
    a = animal(21)
    scene = Scene("L1")
    # One frame shows a colour box and a grey box (two animals, whatever their vectors say).
    scene.burst(
        [
            [
                ("doe", (100, 100, 300, 250), view(a, 0.2, k), {"monochrome": False}),
                ("doe", (600, 100, 800, 250), view(night_look(a, 22), 0.2, 10 + k),
                 {"monochrome": True}),
            ]
            for k in range(3)
        ]
    )  # fmt: skip
    ids = scene.write(conn)
    report = identify_location(conn, "L1", WITH_PAIRS, pair_model=hand_model())
    table = sightings(conn)
    assert report.pair_model_joins == 0
    assert deer_of(table, ids[0::2]) != deer_of(table, ids[1::2])
    assert report.refused["same_frame"] >= 1


def test_decisions_are_labelled_pairs_and_a_refit_ranks_a_held_out_true_pair_higher(conn):
    # Two herds' worth of day/night pairs; a person merges some and says "not the same" once.
    scene = Scene("L1")
    day, night = {"monochrome": False}, {"monochrome": True}
    animals = [animal(100 + i) for i in range(5)]
    for i, a in enumerate(animals):
        scene.burst([[("doe", (100, 100, 300, 250), view(a, 0.2, 200 + 10 * i + k), day)]
                     for k in range(2)], minutes=100 * i)  # fmt: skip
        a_night = night_look(a, 300 + i)
        scene.burst([[("doe", (100, 100, 300, 250), view(a_night, 0.2, 400 + 10 * i + k), night)]
                     for k in range(2)], minutes=100 * i + 50)  # fmt: skip
    ids = scene.write(conn)
    identify_location(conn, "L1", MATCH)
    table = sightings(conn)
    halves = [
        (
            deer_of(table, ids[4 * i : 4 * i + 2]).pop(),
            deer_of(table, ids[4 * i + 2 : 4 * i + 4]).pop(),
        )
        for i in range(5)
    ]
    assert all(d != n for d, n in halves)
    # A sceptical starting model: day/night pairs at cosine 0.5 look like strangers.
    start = PairModel(
        np.zeros(len(FEATURES)), -2.0, np.zeros(len(FEATURES)), np.ones(len(FEATURES))
    )
    start = PairModel.from_json(start.to_json() | {"weights": list(hand_model().weights * 0.1)})
    for d, n in halves[:3]:
        merge_deer(conn, d, n, reviewer="test")
    not_same(conn, halves[3][0], halves[4][1], reviewer="test")
    with conn.cursor() as cur:
        pairs = labelled_pairs(cur)
        assert [p.same for p in pairs] == [True, True, True, False]
        x, y, used = labelled_examples(cur, EMB_VERSION)
        assert x.shape == (4, len(FEATURES)) and y.tolist() == [1.0, 1.0, 1.0, 0.0]
        held = deer_sides(cur, list(halves[4]), EMB_VERSION)
        refit, n = refit_on_decisions(cur, start, EMB_VERSION)
    conn.rollback()
    assert n == 4
    held_out = feature_matrix([(held[halves[4][0]], held[halves[4][1]])])
    assert float(refit.probability(held_out)[0]) > float(start.probability(held_out)[0])


def test_the_cut_is_the_calibrations_unless_run_config_sets_it():
    model = hand_model().to_json()
    calibration = Calibration(
        "v1", 0.6, {"pair_join_probability": 0.85}, pair_model=model, source="file"
    )
    assert IdentityConfig().match_config(calibration).pair_join_probability == 0.85
    override = IdentityConfig(pair_join_probability=0.5).match_config(calibration)
    assert override.pair_join_probability == 0.5
    assert IdentityConfig(pair_model=False).match_config(calibration).pair_join_probability is None
    bare = Calibration("v1", 0.6, {"pair_join_probability": 0.85}, pair_model=None)
    assert IdentityConfig().match_config(bare).pair_join_probability is None


def test_the_first_pass_threshold_fitted_with_the_pair_model_applies_only_with_it():
    thresholds = {"pair_join_probability": 0.85, "pair_first_pass_threshold": 0.7}
    calibration = Calibration("v1", 0.6, thresholds, hand_model().to_json(), source="file")
    assert IdentityConfig().threshold_and_source(calibration) == (
        0.7,
        "file (pair_first_pass_threshold)",
    )
    assert IdentityConfig(pair_model=False).threshold_and_source(calibration) == (0.6, "file")
    assert IdentityConfig(match_threshold=0.5).match_config(calibration).threshold == 0.5
