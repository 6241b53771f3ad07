"""Device selection and model-version hashing shared by the detector and the embedder.

``DEER_DEVICE`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; models are versioned by a short hash
of their weights so that detections and embeddings written by different weights never mix.
"""

from __future__ import annotations

import hashlib
import os

import torch

VERSION_CHARS = 12


class DeviceError(ValueError):
    """``DEER_DEVICE`` names a device that is malformed or not available here."""


def resolve_device(spec: str | None = None) -> torch.device:
    """Turn a device spec into a torch device.

    Args:
        spec: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; None or ""
            means ``auto``.

    Returns:
        The device.

    Raises:
        DeviceError: the spec is malformed, or asks for CUDA where there is none.
    """
    value = (spec or "auto").strip().lower()
    if value == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    if value == "cuda" or value.startswith("cuda:"):
        index = 0 if value == "cuda" else value.split(":", 1)[1]
        if not str(index).isdigit():
            raise DeviceError(f"bad device {spec!r}: expected auto, cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} asked for, but CUDA is not available here")
        if int(index) >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(f"cuda:{int(index)}")
    raise DeviceError(f"bad device {spec!r}: expected auto, cpu, cuda or cuda:N")


def file_version(path: str | os.PathLike) -> str:
    """Return a short SHA-256 of a file's bytes, used as a model version.

    Args:
        path: the weights file.

    Returns:
        The first 12 hex digits of the file's SHA-256.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:VERSION_CHARS]


def device_name(device: torch.device) -> str:
    """Describe a device in words for reports, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
