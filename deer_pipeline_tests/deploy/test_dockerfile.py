"""The Dockerfile: CUDA base, pinned project install, non-root, weights only on request."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_is_cuda_based_non_root_and_installs_the_deploy_extra():
    steps = _instructions()
    args = dict(arg.split("=", 1) for kind, arg in steps if kind == "ARG" and "=" in arg)
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:") and "runtime" in args["CUDA_IMAGE"]
    assert args["WEIGHTS"] == "none"
    runs = " ".join(arg for kind, arg in steps if kind == "RUN")
    assert 'pip install ".[deploy]"' in runs
    users = [arg for kind, arg in steps if kind == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "--module-name deer_pipeline.definitions" in " ".join(
        re.findall(r'"([^"]+)"', steps[-1][1])
    )


def test_weights_reach_the_image_only_through_the_bundled_stage():
    steps = _instructions()
    copies_of_models = [arg for kind, arg in steps if kind == "COPY" and "models" in arg]
    assert copies_of_models == ["models/ /models/", "--from=weights /models/ models/"]
    froms = [arg for kind, arg in steps if kind == "FROM"]
    assert "base AS weights-none" in froms and "weights-${WEIGHTS} AS weights" in froms


def test_dockerignore_keeps_state_and_secrets_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".deer", "**/.env", "deer_pipeline_tests"} <= ignored
