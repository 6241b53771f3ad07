"""The pair model: exact features of a built pair, refits that learn gently, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deer_pipeline.reid.pair_model import (
    FEATURES,
    Neighbourhood,
    PairModel,
    features_in_play,
    make_side,
    merge_sides,
    pair_features,
)
from deer_pipeline.reid.sex import SexVote

HOUR = 3600.0


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float64)
    return v / np.linalg.norm(v)


def feature(x: np.ndarray, name: str) -> float:
    return float(x[FEATURES.index(name)])


def test_features_of_a_built_pair_are_exact():
    # Side a: two colour detections; side b: one colour, one infrared, at another camera.
    a = make_side(
        np.stack([unit(1, 0, 0), unit(0, 1, 0)]),
        [False, False],
        [0.0, 10.0],
        {"north"},
        SexVote({"doe": 3.0, "buck": 1.0}),
    )
    b = make_side(
        np.stack([unit(1, 0, 0), unit(1, 1, 0)]),
        [False, True],
        [5 * HOUR, 7 * HOUR],
        {"south"},
        SexVote({"doe": 1.0}),
    )
    x = pair_features(a, b)
    r = 1 / math.sqrt(2)
    sims = [1.0, r, 0.0, r]  # (a0,b0) (a0,b1) (a1,b0) (a1,b1)
    assert x.shape == (len(FEATURES),)
    assert feature(x, "average_cosine") == pytest.approx(np.mean(sims))
    assert feature(x, "best_cosine") == pytest.approx(1.0)
    assert feature(x, "median_cosine") == pytest.approx(np.median(sims))
    mean_a, mean_b = unit(1, 1, 0), unit(1 + r, r, 0)
    assert feature(x, "mean_cosine") == pytest.approx(float(mean_a @ mean_b))
    assert feature(x, "day_day_cosine") == pytest.approx((1.0 + 0.0) / 2)
    assert feature(x, "day_night_cosine") == pytest.approx((r + r) / 2)
    assert feature(x, "day_day_best") == pytest.approx(1.0)
    assert feature(x, "day_night_best") == pytest.approx(r)
    assert feature(x, "night_night_best") == 0.0
    assert feature(x, "night_night_cosine") == 0.0
    assert (feature(x, "has_day_day"), feature(x, "has_night_night")) == (1.0, 0.0)
    assert feature(x, "has_day_night") == 1.0
    assert (feature(x, "night_fraction_low"), feature(x, "night_fraction_high")) == (0.0, 0.5)
    assert feature(x, "log_hours_apart") == pytest.approx(math.log1p((5 * HOUR - 10) / HOUR))
    assert feature(x, "same_camera") == 0.0
    assert feature(x, "sex_agreement") == pytest.approx(0.75)
    assert feature(x, "sex_margin_low") == pytest.approx(0.5)
    assert feature(x, "sex_margin_high") == pytest.approx(1.0)
    assert feature(x, "same_sex_leader") == 1.0
    assert feature(x, "log_size_low") == feature(x, "log_size_high") == pytest.approx(math.log(3))
    np.testing.assert_allclose(pair_features(b, a), x)  # symmetric
    assert feature(x, "log_rank_any") == feature(x, "log_rank_cross") == 0.0
    ranked = pair_features(a, b, (2, 1))
    assert feature(ranked, "log_rank_any") == pytest.approx(math.log(3))
    assert feature(ranked, "log_rank_cross") == pytest.approx(math.log(2))


def test_neighbourhood_ranks_overall_and_across_day_and_night():
    day = make_side(np.stack([unit(1, 0, 0)]), [False])
    near_day = make_side(np.stack([unit(1, 0.2, 0)]), [False])
    night = make_side(np.stack([unit(1, 0, 1)]), [True])
    far_night = make_side(np.stack([unit(0, 1, 1)]), [True])
    hood = Neighbourhood([day, near_day, night, far_night])
    assert hood.ranks(0, 1) == (0, 0)  # each other's nearest; no cross pair
    assert hood.ranks(0, 2) == (1, 0)  # night is day's second overall, its first across
    assert hood.ranks(1, 3) == (2, 1)  # near_day ranks far_night third, second across
    assert hood.nearest(1) == {(0, 1), (0, 2), (2, 3), (1, 2), (1, 3)}
    hood.join(0, 1)  # the two day sides become one: its best cosine to each is the better
    assert hood.any[0, 2] == pytest.approx(float(unit(1, 0, 0) @ unit(1, 0, 1)))
    assert hood.cross[0, 3] == pytest.approx(float(unit(1, 0.2, 0) @ unit(0, 1, 1)))
    assert np.isneginf(hood.any[1]).all() and np.isneginf(hood.any[:, 1]).all()
    x = features_in_play([day, near_day, night, far_night], [(0, 2), (1, 3)])
    assert x[:, FEATURES.index("log_rank_any")].tolist() == pytest.approx(
        [math.log(2), math.log(3)]
    )
    assert x[:, FEATURES.index("log_rank_cross")].tolist() == pytest.approx([0.0, math.log(2)])


def test_merged_sides_add_up():
    a = make_side(np.stack([unit(1, 0), unit(0, 1)]), [False, True], [1.0, 2.0], {"x"})
    b = make_side(np.stack([unit(1, 1)]), [None], [None], {"y"})
    both = merge_sides([a, b])
    assert both.size == 3 and both.locations == {"x", "y"}
    np.testing.assert_allclose(both.total, a.total + b.total)
    assert both.night_fraction == 0.5


def test_unknown_condition_and_time_are_neutral():
    a = make_side(np.stack([unit(1, 0)]), None, None, {"x"})
    b = make_side(np.stack([unit(1, 1)]), [None], [None], {"x"})
    x = pair_features(a, b)
    assert feature(x, "has_day_day") + feature(x, "has_night_night") == 0.0
    assert feature(x, "has_day_night") == 0.0
    assert feature(x, "same_camera") == 1.0
    assert feature(x, "sex_agreement") == pytest.approx(1 / 3)
    assert feature(x, "same_sex_leader") == 0.0


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled feature rows where 'same' pairs have higher cosines."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(float)
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, FEATURES.index("average_cosine")] += 2.0 * y
    return x, y


def test_fit_is_deterministic_and_round_trips():
    x, y = synthetic(200, 1)
    m1, m2 = PairModel.fit(x, y), PairModel.fit(x, y)
    np.testing.assert_array_equal(m1.weights, m2.weights)
    back = PairModel.from_json(m1.to_json())
    np.testing.assert_allclose(back.probability(x), m1.probability(x), atol=1e-5)
    p = m1.probability(x)
    assert p[y == 1].mean() > 0.7 > 0.3 > p[y == 0].mean()


def test_refit_moves_a_held_out_true_pair_up_and_few_decisions_move_it_gently():
    # The starting model learnt on a world where same-animal pairs have a high day-day cosine;
    # this herd's same-animal pairs are day-night pairs with a middling day-night cosine.
    x, y = synthetic(400, 2)
    start = PairModel.fit(x, y)
    dn = FEATURES.index("day_night_cosine")

    def herd(n: int, seed: int):
        rng = np.random.default_rng(seed)
        rows = np.tile(x.mean(axis=0), (n, 1))
        labels = (np.arange(n) % 2).astype(float)
        rows[:, dn] = np.where(labels == 1, 1.5, -1.5) + 0.1 * rng.normal(size=n)
        return rows, labels

    train_x, train_y = herd(40, 3)
    held_x, _ = herd(2, 4)
    true_pair = held_x[1:2]
    before = float(start.probability(true_pair)[0])
    one = start.refit(train_x[:2], train_y[:2])
    many = start.refit(train_x, train_y)
    after_one, after_many = (float(m.probability(true_pair)[0]) for m in (one, many))
    assert before < after_one < after_many
    assert after_many > 0.8
    assert many.examples == start.examples + 40
    np.testing.assert_array_equal(start.refit(train_x, train_y).weights, many.weights)
    assert start.refit(train_x[:0], train_y[:0]) is start


def test_from_json_refuses_other_features():
    data = PairModel.fit(*synthetic(50, 5)).to_json()
    data["features"] = data["features"][:-1]
    with pytest.raises(ValueError, match="features"):
        PairModel.from_json(data)
