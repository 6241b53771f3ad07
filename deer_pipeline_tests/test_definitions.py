"""The code location loads the way ``dagster dev`` and the UI load it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from deer_pipeline.instance import WORKSPACE_YAML, prepare_environment


def test_dagster_definitions_validate(deer_home):
    prepare_environment()
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(WORKSPACE_YAML)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful for code location deer_pipeline" in result.stdout + result.stderr


def test_definitions_hold_the_contract_names():
    from deer_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "raw_images",
        "detections",
        "embeddings",
        "deer_identities",
        "camtrap_dp",
        "herd_survey",
        "benchmark",
    }
    checked = {key.asset_key.to_user_string() for key in graph.asset_check_keys}
    assert checked == keys - {"benchmark"}  # every pipeline asset has at least one check
    assert defs.resolve_sensor_def("new_images_sensor") is not None
    assert graph.get(dg.AssetKey("raw_images")).partitions_def.name == "camera_locations"
