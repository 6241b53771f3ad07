"""The ``herd_survey`` asset and its check in real Dagster runs, before and after review."""

from __future__ import annotations

import json

import dagster as dg

from deer_pipeline.assets.herd_survey import CHECKS, herd_survey, report_dir
from deer_pipeline.cli import main
from deer_pipeline.db.connect import connect
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.survey import SurveyResource
from deer_pipeline_tests.exports.herd_world import EAST, build_herd


def _materialize(key: str, root, survey: SurveyResource):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [key])
    result = dg.materialize(
        [herd_survey, *CHECKS],
        partition_key=key,
        instance=instance,
        resources={
            "database": DatabaseResource(),
            "image_root": ImageRootResource(root=str(root)),
            "survey": survey,
        },
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("herd_survey")
    (check,) = result.get_asset_check_evaluations()
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}, check


def test_herd_survey_asset_reports_and_warns_until_reviewed(clean_db, tmp_path, capsys):
    conn = connect(clean_db.data)
    world = build_herd(conn, tmp_path / "world")
    conn.close()
    key = world["keys"][EAST]
    meta, check = _materialize(key, world["truth"].parent, SurveyResource())
    assert (meta["unique_deer"], meta["reviewed_deer"], meta["camera_days"]) == (17, 0, 9)
    assert "| bucks | 8 | 8 |" in meta["headline"] and "| total | 17 |" in meta["headline"]
    assert meta["report"] == str(report_dir() / "index.html")
    assert meta["report_url"].startswith("file://") and meta["night_detections"] == 15
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith("most of the buck, doe, fawn, total count")
    summary = json.loads((report_dir() / "summary.json").read_text())
    assert summary["unique"]["total"] == 17
    assert len(list(report_dir().glob("herd-*.png"))) == 7

    assert main(["review", "simulate", "--truth", str(world["truth"])]) == 0
    capsys.readouterr()
    window = SurveyResource(start="2024-09-01", end="2024-09-03", locations=[EAST])
    meta, check = _materialize(key, world["truth"].parent, window)
    assert (meta["window_start"], meta["window_end"]) == ("2024-09-01", "2024-09-03")
    # East Gate, days 0-2: K1, K2, D1, D2, F1; the queue asked about each of them (merges, and
    # every deer's parts as possible strays, kept), so every count rests on reviewed deer
    assert (meta["unique_bucks"], meta["unique_does"], meta["unique_fawns"]) == (2, 2, 1)
    assert meta["reviewed_deer"] == 5
    assert check.passed and check.description == "every count rests mostly on reviewed deer"
    assert check.metadata["unreviewed_share_buck"].value == 0.0
    summary = json.loads((report_dir() / "summary.json").read_text())
    assert [x["name"] for x in summary["per_location"]] == [EAST]
