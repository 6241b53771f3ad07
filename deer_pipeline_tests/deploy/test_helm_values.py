"""deploy/helm/values.yaml: valid YAML, only keys of the targeted chart, pools as locally."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
KEYS = Path(__file__).with_name("dagster_chart_keys.txt")


def _chart_keys() -> tuple[set[str], set[str]]:
    exact, open_prefixes = set(), set()
    for line in KEYS.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith(".*"):
            open_prefixes.add(line[:-2])
        else:
            exact.add(line)
    ancestors = {
        ".".join(parts[:i]).removesuffix("[]")
        for parts in (key.split(".") for key in exact | open_prefixes)
        for i in range(1, len(parts))
    }
    return exact | ancestors, open_prefixes


def _paths(node, prefix: str = ""):
    """Yield every key path of a values tree (list items as ``[]``), stopping at scalars."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from _paths(value, path)
    elif isinstance(node, list):
        for item in node:
            yield from _paths(item, f"{prefix}[]")


def _allowed(path: str, exact: set[str], open_prefixes: set[str]) -> bool:
    if path in exact:
        return True
    return any(
        path == p or path.startswith(p + ".") or path.startswith(p + "[]") for p in open_prefixes
    )


def test_values_parse_and_use_only_chart_keys():
    values = yaml.safe_load(VALUES.read_text())
    exact, open_prefixes = _chart_keys()
    unknown = [p for p in _paths(values) if not _allowed(p, exact, open_prefixes)]
    assert not unknown, f"keys not in the chart's schema: {unknown}"


def test_values_header_names_the_chart_version_of_pyproject():
    text = VALUES.read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"dagster==1.13.27"' in pyproject
    assert "--version 1.13.27" in text and "dagster/dagster" in text


def test_cluster_runs_are_queued_pooled_and_monitored():
    values = yaml.safe_load(VALUES.read_text())
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    pools = values["concurrency"]["pools"]
    assert values["concurrency"]["enabled"] is True
    assert pools["granularity"] == local["concurrency"]["pools"]["granularity"] == "op"
    assert pools["defaultLimit"] == local["concurrency"]["pools"]["default_limit"] == 1
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] is True and monitoring["freeSlotsAfterRunEndSeconds"] > 0
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    # GPUs are asked for by GPU runs' tags only: no run pod holds one by default
    assert "nvidia.com/gpu" not in yaml.safe_dump(launcher)
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "deer_pipeline.definitions"]
    mounts = {m["mountPath"]: m for m in deployment["volumeMounts"]}
    assert mounts["/data/images"]["readOnly"] is True
