"""Device and precision selection and model-version hashing shared by the detector and the embedder.

``DEER_DEVICE`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``DEER_PRECISION`` is ``auto``,
``fp32``, ``bf16`` or ``fp16`` and ``auto`` is resolved here, in :func:`resolve_precision`, for
both models: fp16 on CUDA, bf16 on a CPU with bfloat16 units (AMX or AVX-512 BF16, asked of torch's
own CPU feature detection) where torch's oneDNN kernels run bf16 convolutions several times faster
than fp32, fp32 elsewhere. Models are versioned by a short hash of their weights so that
detections and embeddings written by different weights never mix.
"""

from __future__ import annotations

import hashlib
import os

import torch

VERSION_CHARS = 12
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# torch.cpu.get_capabilities() keys of the x86 units that compute bfloat16 natively.
CPU_BF16_UNITS = ("amx_bf16", "avx512_bf16")


class DeviceError(ValueError):
    """``DEER_DEVICE`` names a device that is malformed or not available here."""


class PrecisionError(ValueError):
    """``DEER_PRECISION`` is not one of ``auto``, ``fp32``, ``bf16``, ``fp16``."""


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


def cpu_bf16_units() -> list[str]:
    """The CPU's bfloat16 units that torch can use (empty: none, or torch cannot tell).

    Asks ``torch.cpu.get_capabilities()`` (cpuinfo; recent torch releases) for AMX-BF16 and
    AVX-512 BF16, and requires torch's oneDNN backend, which holds the fast bf16 kernels.
    """
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is None or not torch.backends.mkldnn.is_available():
        return []
    capabilities = get_capabilities()
    return [unit for unit in CPU_BF16_UNITS if capabilities.get(unit)]


def resolve_precision(spec: str | None, device: torch.device) -> str:
    """Turn a precision spec into the arithmetic the models use on ``device``.

    Args:
        spec: ``auto`` (fp16 on CUDA, bf16 on a CPU with bfloat16 units, else fp32), ``fp32``,
            ``bf16`` or ``fp16``; None or "" means ``auto``.
        device: the models' device.

    Returns:
        ``fp32``, ``bf16`` or ``fp16``.

    Raises:
        PrecisionError: the spec is not one of the four.
    """
    value = (spec or "auto").strip().lower()
    if value not in PRECISIONS:
        raise PrecisionError(f"bad precision {spec!r}: expected one of {', '.join(PRECISIONS)}")
    if value != "auto":
        return value
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_bf16_units():
        return "bf16"
    return "fp32"


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
