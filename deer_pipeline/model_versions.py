"""The one place that names model versions and the inference assets' code versions.

A model version is what a weights spec is recorded as (``detections.model_version``,
``embeddings.model_version``): the short SHA-256 of the weights file, ``random-<seed>`` for an
explicitly random backbone, for ``imagenet`` the hash of torchvision's cached file, and for a
timm backbone the model's name plus the hash of its checkpoint (``timm-<name>-<hash>`` for
``timm:<name>[@<file>]``, ``hf-<owner>--<repo>-<hash>`` for ``hf-hub:<owner>/<repo>``). The
embedder, the model resources, the inference assets and the identity step all ask here, so a
version computed without loading a model is the same string the loaded model records.

The inference assets' code version is the code revision plus the models' versions. The assets'
definitions carry it for the configured defaults; each materialization records the one for the
models the run really used (run config may name other weights).
"""

from __future__ import annotations

import os

from deer_pipeline.vision.runtime import file_version

INFERENCE_CODE_REVISION = "1"
"""Bump when the detection or embedding code changes what it writes for the same models."""
MISSING = "missing"


def imagenet_cache_path() -> str:
    """Where torchvision keeps its ImageNet ResNet50 weights once downloaded."""
    import torch
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights.IMAGENET1K_V2.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def weights_version(spec: str, seed: int = 0) -> str:
    """Return the model version a weights spec records, without loading it.

    Never downloads: a ``timm:`` or ``hf-hub:`` spec whose weights are not on this machine (or a
    malformed one) is ``missing`` too.

    Args:
        spec: a weights file path, ``imagenet``, ``random``, ``timm:<name>[@<file>]`` or
            ``hf-hub:<repo>``.
        seed: the initialisation seed of ``random`` weights.

    Returns:
        The file's short hash, ``random-<seed>``, the timm model's name and hash, or ``missing``
        when there is no file to hash.
    """
    spec = spec.strip()
    if spec == "random":
        return f"random-{seed}"
    if spec.startswith(("timm:", "hf-hub:")):
        return _timm_version(spec)
    path = imagenet_cache_path() if spec == "imagenet" else spec
    return file_version(path) if os.path.isfile(path) else MISSING


def timm_version(spec, weights: str) -> str:
    """The version of a timm backbone (a parsed ``ReidSpec``) whose weights are ``weights``."""
    from deer_pipeline.vision.backbones import version_prefix

    return f"{version_prefix(spec)}-{file_version(weights)}"


def _timm_version(text: str) -> str:
    from deer_pipeline.vision.backbones import EmbedderWeightsError, parse_spec, weights_file

    try:
        spec = parse_spec(text)
    except EmbedderWeightsError:
        return MISSING
    weights = weights_file(spec)
    return timm_version(spec, weights) if weights else MISSING


def detections_code_version(detector_version: str) -> str:
    """Code version of ``detections`` made by a detector of this version."""
    return f"{INFERENCE_CODE_REVISION}+det-{detector_version}"


def embeddings_code_version(detector_version: str, reid_version: str) -> str:
    """Code version of ``embeddings`` of that detector's boxes by a backbone of this version."""
    return f"{INFERENCE_CODE_REVISION}+det-{detector_version}+reid-{reid_version}"
