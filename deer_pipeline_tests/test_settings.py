"""Resources own the settings: the launchpad shows the value in force or the variable it reads."""

import dagster as dg

from deer_pipeline import config
from deer_pipeline.jobs import PIPELINE_JOB
from deer_pipeline.resources import project_resources


def _resource_defaults(resources: dict) -> dict:
    """The per-resource config defaults of a job's run config schema (what the launchpad shows)."""
    from deer_pipeline.definitions import defs

    job = dg.Definitions(assets=defs.assets, jobs=defs.jobs, resources=resources).resolve_job_def(
        PIPELINE_JOB
    )
    fields = job.run_config_schema.config_type.fields["resources"].config_type.fields
    return {name: fields[name].config_type.fields["config"].default_value for name in resources}


def _resource_descriptions(resources: dict) -> dict:
    """Each resource field's description in the run config schema (the launchpad's help)."""
    from deer_pipeline.definitions import defs

    job = dg.Definitions(assets=defs.assets, jobs=defs.jobs, resources=resources).resolve_job_def(
        PIPELINE_JOB
    )
    fields = job.run_config_schema.config_type.fields["resources"].config_type.fields
    return {
        name: {
            key: field.description
            for key, field in fields[name].config_type.fields["config"].config_type.fields.items()
        }
        for name in resources
    }


def test_defaults_are_visible_values(monkeypatch):
    names = ("DEER_DETECTOR_WEIGHTS", "DEER_REID_WEIGHTS", "DEER_DEVICE", "DEER_PRECISION")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    defaults = _resource_defaults(project_resources())
    assert defaults["detector"]["weights"] == str(config.DEFAULT_DETECTOR_WEIGHTS)
    assert defaults["embedder"]["weights"] == str(config.DEFAULT_REID_WEIGHTS)
    assert defaults["detector"]["device"] == defaults["embedder"]["device"] == "auto"
    assert defaults["detector"]["precision"] == defaults["embedder"]["precision"] == "auto"


def test_launchpad_explains_precision():
    from deer_pipeline.resources.models import PRECISION_HELP

    help_texts = _resource_descriptions(project_resources())
    assert help_texts["detector"]["precision"] == help_texts["embedder"]["precision"]
    assert help_texts["detector"]["precision"] == PRECISION_HELP
    assert "DEER_PRECISION" in PRECISION_HELP and "bf16" in PRECISION_HELP


def test_set_variables_are_declared_as_env_vars(monkeypatch, tmp_path):
    monkeypatch.setenv("DEER_DETECTOR_WEIGHTS", str(tmp_path / "det.pt"))
    monkeypatch.setenv("DEER_DEVICE", "cpu")
    monkeypatch.setenv("DEER_PRECISION", "fp32")
    monkeypatch.delenv("DEER_REID_WEIGHTS", raising=False)
    defaults = _resource_defaults(project_resources())
    assert defaults["detector"]["weights"] == {"env": "DEER_DETECTOR_WEIGHTS"}
    device = {"env": "DEER_DEVICE"}
    assert defaults["detector"]["device"] == defaults["embedder"]["device"] == device
    precision = {"env": "DEER_PRECISION"}
    assert defaults["detector"]["precision"] == defaults["embedder"]["precision"] == precision
    assert defaults["embedder"]["weights"] == str(config.DEFAULT_REID_WEIGHTS)


def test_resources_name_model_versions_without_loading(tmp_path):
    from deer_pipeline.model_versions import MISSING, weights_version
    from deer_pipeline.resources.models import DetectorResource, EmbedderResource
    from deer_pipeline.vision.runtime import file_version

    assert DetectorResource().model_version() == file_version(config.DEFAULT_DETECTOR_WEIGHTS)
    assert EmbedderResource(weights="random").model_version() == "random-0"
    assert weights_version("random", seed=4) == "random-4"
    assert DetectorResource(weights=str(tmp_path / "absent.pt")).model_version() == MISSING
