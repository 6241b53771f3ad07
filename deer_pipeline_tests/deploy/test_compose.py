"""deploy/compose: the stack's shape, its containers' instance config, `compose config`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _instance() -> dict:
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(COMPOSE_DIR), "dagster.yaml")
    return config


def test_services_gpu_reservation_and_read_only_images():
    services = _compose()["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon"}
    assert services["postgres"]["image"].endswith("pgvector/pgvector:pg17}")
    (device,) = services["code"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "deer_images:/data/images:ro" in services["code"]["volumes"]
    assert services["code"]["build"] == {
        "context": "../..",
        "dockerfile": "Dockerfile",
        "args": {"WEIGHTS": "${DEER_WEIGHTS:-none}"},
    }
    for name in ("webserver", "daemon"):
        assert "/var/run/docker.sock:/var/run/docker.sock" in services[name]["volumes"]


def test_secrets_come_from_the_git_ignored_env_file():
    text = COMPOSE.read_text()
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}" in text
    example = (COMPOSE_DIR / ".env.example").read_text()
    assert "POSTGRES_PASSWORD=" in example
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(COMPOSE_DIR / ".env")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/compose/.env must be git-ignored"


def test_container_instance_config_is_valid_and_pooled_like_the_local_one():
    config = _instance()
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert config["concurrency"] == local["concurrency"]
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    kwargs = launcher["config"]["container_kwargs"]
    assert "deer_images:/data/images:ro" in kwargs["volumes"]
    assert kwargs["device_requests"][0]["capabilities"] == [["gpu"]]
    volumes = _compose()["volumes"]
    for mount in kwargs["volumes"]:
        assert volumes[mount.split(":")[0]]["name"] == mount.split(":")[0]
    assert launcher["config"]["network"] == _compose()["networks"]["deer"]["name"]


def test_docker_run_launcher_accepts_its_config():
    from dagster._config import process_config
    from dagster_docker import DockerRunLauncher

    result = process_config(DockerRunLauncher.config_type(), _instance()["run_launcher"]["config"])
    assert result.success, result.errors


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_resolves():
    cli = _compose_cli()
    assert cli is not None, "no Compose CLI: `make test` installs Debian's docker-compose"
    for env_file in ([], ["--env-file", str(COMPOSE_DIR / ".env.example")]):
        result = subprocess.run(
            [*cli, *env_file, "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
