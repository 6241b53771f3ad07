"""``deer-pipeline calibrate``: a model's own threshold from a labelled set or review decisions."""

from __future__ import annotations

import json

import pytest

from deer_pipeline.cli import main
from deer_pipeline.db.connect import connect
from deer_pipeline.reid import calibration
from deer_pipeline.reid.calibrate import (
    CalibrationDataError,
    fit_threshold,
    labels_from_decisions,
    labels_from_truth,
)
from deer_pipeline_tests.reid.builders import EMB_VERSION, Scene, animal, view


def _herd(conn, root=None, animals=4, visits=3):
    """Each animal in several two-frame bursts alone (views at noise 0.8: cosine about 0.6)."""
    scene = Scene("Oak")
    who = []
    for a in range(animals):
        identity = animal(100 + a)
        for v in range(visits):
            seed = 1000 * a + 10 * v
            scene.burst(
                [[("doe", (100, 100, 300, 250), view(identity, 0.8, seed + k))] for k in range(2)],
                minutes=60 * (a * visits + v),
            )
            who += [f"A{a}", f"A{a}"]
    ids = scene.write(conn)
    if root is not None:
        truth = [
            {
                "file": image["rel_path"],
                "boxes": [{"bbox": [100, 100, 300, 250], "class": "doe", "individual_id": w}],
            }
            for image, w in zip(scene.images, who, strict=True)
        ]
        (root / "ground_truth.json").write_text(json.dumps({"images": truth}))
    return ids, who


def test_labelled_set_fits_a_cut_between_same_and_different(clean_db, tmp_path, capsys):
    conn = connect(clean_db.data)
    _herd(conn, tmp_path)
    conn.commit()
    with conn.cursor() as cur:
        fit = fit_threshold(
            cur, EMB_VERSION, labels_from_truth(cur, EMB_VERSION, tmp_path / "ground_truth.json")
        )
    # 4 animals x 6 detections (one per photo): 4 x 15 same pairs, 6 x 36 different pairs
    assert (fit.same_pairs, fit.different_pairs) == (4 * 15, 6 * 36)
    assert fit.different_median < fit.threshold < fit.same_median
    assert fit.true_positive_rate == 1.0 and fit.false_positive_rate == 0.0

    truth = str(tmp_path / "ground_truth.json")
    assert main(["calibrate", "--truth", truth, "--model-version", EMB_VERSION]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["threshold"] == fit.threshold and last["stored"] is True
    with conn.cursor() as cur:
        stored = calibration.resolve(cur, EMB_VERSION)
    assert stored.match_threshold == fit.threshold
    assert stored.source == "database:labelled:ground_truth.json"
    assert stored.fitted["same_pairs"] == fit.same_pairs
    conn.close()


def test_review_decisions_fit_the_same_way(clean_db):
    conn = connect(clean_db.data)
    ids, who = _herd(conn)
    with conn.cursor() as cur:
        for a in range(3):  # a person placed three animals' detections by hand
            cur.execute(
                "INSERT INTO deer (sex, model_version) VALUES ('doe', %s) RETURNING id",
                (EMB_VERSION,),
            )
            deer = cur.fetchone()[0]
            for det, w in zip(ids, who, strict=True):
                if w == f"A{a}":
                    cur.execute(
                        "INSERT INTO sightings (detection_id, deer_id, method)"
                        " VALUES (%s, %s, 'manual')",
                        (det, deer),
                    )
        mine = [d for d, w in zip(ids, who, strict=True) if w == "A3"]
        other = [d for d, w in zip(ids, who, strict=True) if w == "A0"]
        cur.execute(
            "INSERT INTO deer_not_same (left_detections, right_detections, reviewer)"
            " VALUES (%s, %s, 'me'), (%s, %s, 'me')",
            (mine[:3], other[:3], mine[3:], ids[6:8]),
        )
        labels = labels_from_decisions(cur, EMB_VERSION)
        fit = fit_threshold(cur, EMB_VERSION, labels)
    conn.rollback()
    assert labels.source == "review"
    assert (fit.same_pairs, fit.different_pairs) == (3 * 15, 9 + 6)
    assert fit.different_median < fit.threshold < fit.same_median
    conn.close()


def test_too_few_labels_is_one_line_and_stores_nothing(clean_db, tmp_path, capsys):
    conn = connect(clean_db.data)
    _herd(conn, tmp_path, animals=1, visits=2)
    conn.commit()
    with conn.cursor() as cur, pytest.raises(CalibrationDataError, match="at least 10"):
        fit_threshold(cur, EMB_VERSION, labels_from_decisions(cur, EMB_VERSION))
    conn.rollback()
    truth = str(tmp_path / "ground_truth.json")
    assert main(["calibrate", "--truth", truth, "--model-version", EMB_VERSION]) == 2
    assert "0 different labelled pairs" in capsys.readouterr().err
    assert main(["calibrate", "--model-version", "never-stored"]) == 2
    assert "no embeddings of model never-stored" in capsys.readouterr().err
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM model_calibrations")
        assert cur.fetchone()[0] == 0
    conn.close()
