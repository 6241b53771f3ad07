"""The pair model's workshop fit on small built worlds: examples, held-out cut, figures."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.pair_model import FEATURES
from deer_pipeline.reid.tracklets import Detection
from deer_pipeline_tests.reid.builders import animal, view
from deer_workshop.pair_fit import CUTS, examples, fit, replay_world, similarity_figures


def night_look(identity: np.ndarray, seed: int) -> np.ndarray:
    v = 0.5 * identity + 0.866 * animal(seed)
    return v / np.linalg.norm(v)


def world(seed: int) -> dict:
    """Three does, each seen by day and by night (two bursts each) at two locations."""
    start = datetime(2024, 9, 1, 6)
    locations: dict[str, list[Detection]] = {"A": [], "B": []}
    labels = {}
    next_id = seed * 1000
    for who in range(3):
        day = animal(seed * 10 + who)
        night = night_look(day, seed * 10 + who + 5)
        for burst, (look, mono) in enumerate([(day, False), (night, True)] * 2):
            loc = "AB"[burst % 2]
            when = start + timedelta(hours=6 * burst + 30 * who)
            for frame in range(3):
                next_id += 1
                locations[loc].append(
                    Detection(
                        id=next_id,
                        image_id=next_id,
                        burst=seed * 100 + who * 10 + burst,
                        frame=frame,
                        captured_at=when + timedelta(seconds=2 * frame),
                        class_name="doe",
                        box=(100 + 20 * frame, 100, 300 + 20 * frame, 250),
                        embedding=view(look, 0.3, next_id).astype(np.float32),
                        confidence=0.9,
                        monochrome=mono,
                    )
                )
                labels[next_id] = (f"D{who}", "doe")
    return {"locations": locations, "labels": labels}


def test_fit_on_built_worlds_is_deterministic_and_picks_a_cut():
    match = MatchConfig(threshold=0.7)
    worlds = [replay_world(str(s), world(s), match) for s in (1, 2, 3)]
    x, y = examples(worlds[0])
    assert x.shape[1] == len(FEATURES) and set(y.tolist()) == {0.0, 1.0}
    one, two = fit(worlds, match), fit(worlds, match)
    np.testing.assert_array_equal(one["model"].weights, two["model"].weights)
    assert one["cut"] in CUTS
    assert {r["world"] for r in one["table"]} == {"1", "2", "3"}
    assert len(one["table"]) == 3 * len(CUTS)


def test_similarity_figures_split_day_night_from_strangers():
    figures = similarity_figures(world(4))
    assert figures["detections"] == 36 and figures["night_detections"] == 18
    assert figures["same_deer_day_day_median_other_bursts"] > 0.8
    assert 0.3 < figures["same_deer_day_night_median"] < 0.6
    assert figures["different_deer_p99"] < figures["same_deer_day_night_median"]
