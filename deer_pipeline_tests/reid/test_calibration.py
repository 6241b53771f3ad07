"""Thresholds that belong to the model: read back from the file or the database, and used."""

from __future__ import annotations

import json
import logging

import pytest

from deer_pipeline.config import DEFAULT_REID_WEIGHTS
from deer_pipeline.db.connect import connect
from deer_pipeline.model_versions import weights_version
from deer_pipeline.reid import calibration as calibrations
from deer_pipeline.reid.calibration import Calibration
from deer_pipeline_tests.assets.test_identities import _scene, materialize_oak
from deer_pipeline_tests.reid.builders import EMB_VERSION


def test_committed_model_has_its_calibration():
    version = weights_version(str(DEFAULT_REID_WEIGHTS))
    path = calibrations.calibration_path(DEFAULT_REID_WEIGHTS)
    found = calibrations.resolve(None, version, DEFAULT_REID_WEIGHTS)
    assert found.source == str(path) and not found.is_fallback
    assert found.model_version == version
    assert found.match_threshold == json.loads(path.read_text())["match_threshold"]


def test_round_trip_and_other_versions_file_ignored(tmp_path, caplog):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    fitted = Calibration("v1", 0.41, thresholds={"review_floor": 0.2}, pair_model={"coef": [1.0]})
    path = calibrations.write_file(calibrations.calibration_path(weights), fitted)
    assert path.name == "w.calibration.json"
    back = calibrations.resolve(None, "v1", weights)
    assert (back.match_threshold, back.threshold("review_floor", 0.9)) == (0.41, 0.2)
    assert back.threshold("absent", 0.9) == 0.9 and back.pair_model == {"coef": [1.0]}
    with caplog.at_level(logging.WARNING, logger=calibrations.__name__):
        assert calibrations.resolve(None, "v2-other", weights).is_fallback
    assert "fitted for model v1, not v2-other" in caplog.text


def test_broken_file_is_an_error_not_a_fallback(tmp_path):
    weights = tmp_path / "w.pt"
    calibrations.calibration_path(weights).write_text('{"format": 1, "model_version": "v1"}')
    with pytest.raises(ValueError, match="not a valid calibration file"):
        calibrations.resolve(None, "v1", weights)


def test_model_without_calibration_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger=calibrations.__name__):
        first = calibrations.resolve(None, "never-calibrated-1", None)
        second = calibrations.resolve(None, "never-calibrated-1", None)
    assert first.is_fallback and second.is_fallback
    assert first.match_threshold == calibrations.FALLBACK_MATCH_THRESHOLD
    lines = [r for r in caplog.records if "never-calibrated-1" in r.getMessage()]
    assert len(lines) == 1 and "has no calibration" in lines[0].getMessage()


def test_identities_use_the_database_calibration_unless_run_config_sets_one(clean_db, tmp_path):
    conn = connect(clean_db.data)
    _scene(conn, tmp_path / "images")
    with conn.cursor() as cur:
        calibrations.store(cur, Calibration(EMB_VERSION, 0.99), "test")
    conn.commit()
    conn.close()
    meta = materialize_oak(tmp_path / "images")
    assert (meta["match_threshold"], meta["match_threshold_source"]) == (0.99, "database:test")
    # at 0.99 nothing across bursts joins: doe A's later burst stays its own deer
    assert (meta["deer_new"], meta["tracklets_matched"]) == (4, 0)
    config = {"ops": {"deer_identities": {"config": {"match_threshold": 0.7}}}}
    meta = materialize_oak(tmp_path / "images", config)
    assert (meta["match_threshold"], meta["match_threshold_source"]) == (0.7, "run config")
    assert meta["tracklets_matched"] == 1
