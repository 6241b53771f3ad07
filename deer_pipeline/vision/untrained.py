"""Untrained detector weights for tests and speed measurements, made without any download.

A freshly initialised YOLOv8n scores every anchor near 1e-4 (its class bias is set for training)
and its activations fade layer after layer, so it finds nothing at usual thresholds. To exercise the
whole path (NMS, class map, crops, embeddings), the BatchNorm statistics are first set from a few
smooth random images (so every layer's output has unit scale) and the class head is re-initialised
with a small spread, so that scores depend on the pixels and a few boxes per image pass ``conf``.
The boxes mean nothing; speed and equivalence checks only need them to be the same wherever the
same weights see the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from deer_pipeline.compat.ultralytics import import_ultralytics
from deer_pipeline.vocabulary import DEER_CLASSES

DEMO_CLASSES = DEER_CLASSES  # the one vocabulary (deer_pipeline.vocabulary)


def save_untrained_detector(
    path: str | os.PathLike,
    names: Sequence[str] = DEMO_CLASSES,
    seed: int = 0,
    head_std: float = 0.003,
    head_bias: float = -3.0,
) -> Path:
    """Write an untrained YOLOv8n with the given class names as an ultralytics ``.pt`` file.

    Args:
        path: file to write.
        names: class names, in class-index order.
        seed: seed for the initialisation (same seed, same file contents but for the save date).
        head_std: standard deviation of the re-initialised class-head weights.
        head_bias: bias of the class head (logit); with the defaults a few boxes per image score
            above 0.25.

    Returns:
        The path written.
    """
    import_ultralytics()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel("yolov8n.yaml", nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    _calibrate_batchnorm(model, seed)
    head = model.model[-1]
    with torch.no_grad():
        for branch in head.cv3:
            last = branch[-1]
            torch.nn.init.normal_(last.weight, std=head_std)
            last.bias.fill_(head_bias)
    wrapper = YOLO("yolov8n.yaml", verbose=False)
    wrapper.model = model
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper.save(str(out))
    return out


def _calibrate_batchnorm(
    model: torch.nn.Module, seed: int, images: int = 8, size: int = 256
) -> None:
    """Set every BatchNorm's running statistics from smooth random images (cumulative average)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(images, 3, size // 16, size // 16, generator=gen)
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    x = (x + 0.1 * torch.rand(x.shape, generator=gen)).clamp(0, 1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def save_untrained_backbone(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a ResNet50 state_dict (no ``fc``) with random weights and calibrated BatchNorm.

    With BatchNorm statistics set from smooth random images, random features differ between crops
    (cosine between unrelated crops well below 1), unlike torchvision's bare initialisation, so
    equivalence checks on embeddings can tell a right crop from a wrong one.

    Args:
        path: file to write (``torch.save`` of the state_dict, fp16 like a compact checkpoint).
        seed: initialisation seed.

    Returns:
        The path written.
    """
    from torchvision.models import resnet50

    torch.manual_seed(seed)
    model = resnet50(weights=None)
    model.fc = torch.nn.Identity()
    _calibrate_batchnorm(model, seed, images=16, size=224)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, out
    )
    return out


def save_untrained_timm(path: str | os.PathLike, model_name: str, seed: int = 0) -> Path:
    """Save a freshly initialised timm backbone's state_dict (no classifier, no download).

    For tests and demonstrations of ``DEER_REID_WEIGHTS=timm:<model_name>@<path>``; a
    ``.safetensors`` suffix writes safetensors, anything else ``torch.save``.

    Args:
        path: the file to write.
        model_name: a timm architecture, e.g. ``vit_tiny_patch16_224``.
        seed: initialisation seed.

    Returns:
        The path written.
    """
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
