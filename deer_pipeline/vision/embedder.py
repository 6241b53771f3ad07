"""Re-ID embeddings: backbone features (L2-normalised) of each detection's crop.

Crops come straight from the decoded array: each image's pixels under its boxes go to the model's
device once, and each crop is resized there with antialiased bilinear filtering (torchvision's
``resized_crop``), so the re-ID trainer can reproduce the inputs with torchvision transforms.
The default backbone is torchvision's ResNet50 with its classifier removed (2048-d); its weights
are a project state_dict, torchvision's ImageNet weights, or ``random`` (explicit, with a warning
that travels to the asset metadata). Any timm backbone can take its place (``timm:<name>[@<file>]``
or ``hf-hub:<repo>``, see ``vision/backbones.py``): then the vector size, the input size, mean and
std and the resize filter are the model's own (``vision/timm_backbone.py``); the crop geometry is
the same for every model.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import ResNet50_Weights, resnet50

from deer_pipeline.model_versions import weights_version
from deer_pipeline.vision.backbones import SPEC_HELP, EmbedderWeightsError, parse_spec
from deer_pipeline.vision.decode import DecodedImage
from deer_pipeline.vision.projection import ProjectionError, split_projection
from deer_pipeline.vision.runtime import AUTOCAST_DTYPES, resolve_device, resolve_precision
from deer_pipeline.vision.timm_backbone import Preprocess, load_timm

LOG = logging.getLogger(__name__)
EMBEDDING_DIM = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET50_INPUT = 224
__all__ = ["Embedder", "EmbedderConfig", "EmbedderWeightsError", "crop_boxes"]

# Crops per forward pass by device. On the 2-core CPU, 16 against 64 over 800 images (1920x1080,
# detector at 320): 116 s against 160 s, peak memory 2.3 GB against 3.3 GB (large activation
# buffers are mapped and zeroed again at each call: 80 s of system time at 64, 35 s at 16).
CUDA_BATCH = 64
CPU_BATCH = 16


@dataclass(frozen=True)
class EmbedderConfig:
    """How to load and run the embedder.

    Attributes:
        weights: a state_dict path, ``imagenet``, ``random``, ``timm:<name>[@<checkpoint>]`` or
            ``hf-hub:<repo>`` (``vision/backbones.py``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: crops per forward pass; None: ``CUDA_BATCH`` on CUDA, ``CPU_BATCH`` on CPU.
        margin: fraction of the box's width (height) added on the left and right (top and bottom).
        input_size: side of the square network input; None: the model's own (224 for the
            ResNet50, a timm model's data config).
        precision: ``auto`` (fp16 on CUDA, bf16 on a CPU with bfloat16 units, else fp32:
            :func:`~deer_pipeline.vision.runtime.resolve_precision`), ``fp32``, ``fp16`` or
            ``bf16``: autocast around the backbone (channels-last) on any device; features are
            normalised in fp32.
            The backbone holds up in fp16 and bf16 (cosine >= 0.9999 against fp32 on real
            crops); the cosine 0.3 once measured came from normalising the same crops twice.
        seed: initialisation seed for ``random`` weights.
    """

    weights: str
    device: str = "auto"
    batch_size: int | None = None
    margin: float = 0.05
    input_size: int | None = None
    precision: str = "auto"
    seed: int = 0


class Embedder:
    """A re-ID backbone loaded once; embeds detection crops in batches.

    Attributes:
        dim: the length of its vectors.
        preprocess: input size, mean and std, resize filter.
        model_version: what its vectors are stored under.
    """

    def __init__(self, config: EmbedderConfig):
        """Load the weights (channels-last; by default fp16 autocast on CUDA, bf16 on bf16 CPUs).

        Args:
            config: weights spec, device, batch size, crop geometry and precision.

        Raises:
            EmbedderWeightsError: the weights cannot be loaded.
            PrecisionError: an unknown precision.
        """
        self.config = config
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.half = self.precision != "fp32"
        self.batch_size = config.batch_size or (
            CUDA_BATCH if self.device.type == "cuda" else CPU_BATCH
        )
        model = self._build(config)
        if config.input_size:
            self.preprocess = replace(self.preprocess, size=(config.input_size,) * 2)
        if self.warning:
            LOG.warning(self.warning)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        mean, std = self.preprocess.mean, self.preprocess.std
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1).mul(255)
        self._inv_std = 1 / torch.tensor(std, device=self.device).view(1, 3, 1, 1).mul(255)

    def _build(self, config: EmbedderConfig) -> torch.nn.Module:
        """Create the backbone with its weights; set kind, version, warning, dim, preprocess."""
        spec = parse_spec(config.weights)
        if spec.is_timm:
            backbone = load_timm(spec, download=True)
            self.weights_kind, self.warning = spec.kind, None
            self.model_version = backbone.model_version
            self.dim, self.preprocess = backbone.dim, backbone.preprocess
            return backbone.model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = resnet50(weights=None)  # torchvision's initialisation, seeded
        model.fc = torch.nn.Identity()
        self.weights_kind, self.model_version, self.warning = _load_weights(model, config)
        self.dim = EMBEDDING_DIM
        size = (RESNET50_INPUT, RESNET50_INPUT)
        self.preprocess = Preprocess(size, IMAGENET_MEAN, IMAGENET_STD, "bilinear")
        return model

    @torch.inference_mode()
    def crops(
        self, image: DecodedImage, boxes: np.ndarray, pixels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cut the network inputs for one image's boxes (before normalisation), on the device.

        Each crop is the box grown by the margin, on whole pixels (:func:`crop_boxes`), resized to
        the model's input size with antialiased filtering (bilinear for the ResNet50: what
        torchvision's ``resized_crop`` does, so a trainer using torchvision transforms sees the
        same inputs; a timm model's own interpolation otherwise).

        Args:
            image: the decoded image.
            boxes: (n, 4) x1, y1, x2, y2 in full-size upright pixels.
            pixels: the decoded array already on the model's device as a (3, h, w) uint8 tensor
                (the detector's upload); None uploads the boxes' region of ``image.array``.

        Returns:
            (n, 3, height, width) float32 on the model's device, RGB in 0..255.
        """
        size = self.preprocess.size
        if len(boxes) == 0:
            return torch.zeros((0, 3, *size), device=self.device)
        rects = crop_boxes(image, boxes, self.config.margin)
        if pixels is None:
            x0, y0 = rects[:, 0].min(), rects[:, 1].min()
            x1, y1 = rects[:, 2].max(), rects[:, 3].max()
            region = np.require(image.array[y0:y1, x0:x1], requirements=["C", "W"])  # one upload
            pixels = torch.from_numpy(region).to(self.device).permute(2, 0, 1)
            rects = rects - np.array([x0, y0, x0, y0])
        out = []
        for rx0, ry0, rx1, ry1 in rects.tolist():
            crop = pixels[:, ry0:ry1, rx0:rx1].unsqueeze(0).float()
            out.append(_resize(crop, size, self.preprocess.interpolation))
        return torch.cat(out)

    @torch.inference_mode()
    def embed_inputs(self, inputs: torch.Tensor, dtype: str = "float32") -> np.ndarray:
        """Embed prepared inputs (model only, in batches); ``inputs`` is left unchanged.

        Args:
            inputs: (n, 3, size, size) RGB in 0..255 (float or uint8), any device.
            dtype: ``float32`` or ``float16`` rows (converted on the device: half the copy).

        Returns:
            (n, dim) L2-normalised rows (:meth:`vectors`), one copy to the host.
        """
        out = []
        for chunk in inputs.split(max(1, self.batch_size)):
            # out of place: the caller's tensor (maybe already float32 here) must not change;
            # normalising it in place once made a second embedding of the same crops wrong
            x = (
                chunk.to(self.device, torch.float32, non_blocking=True) - self._mean
            ) * self._inv_std
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                self.device.type,
                AUTOCAST_DTYPES.get(self.precision, torch.float32),
                enabled=self.half,
            ):
                features = self.model(x)
            out.append(self.vectors(features))
        if not out:
            return np.zeros((0, self.dim), dtype)
        return torch.cat(out).to(getattr(torch, dtype)).cpu().numpy()

    def vectors(self, features: torch.Tensor) -> torch.Tensor:
        """The output step: backbone features (n, dim) -> stored vectors (float32, unit rows).

        Args:
            features: the backbone's pooled features, any float dtype.

        Returns:
            (n, dim) float32 L2-normalised rows on the same device.
        """
        return F.normalize(features.float(), dim=1)

    def embed(
        self,
        items: Sequence[tuple[DecodedImage, np.ndarray]],
        pixels: Sequence[torch.Tensor] | None = None,
        dtype: str = "float32",
    ) -> np.ndarray:
        """Embed every box of several images.

        Args:
            items: (decoded image, (n_i, 4) boxes in full-size upright pixels) pairs.
            pixels: each image already on the device as (3, h, w) uint8 (see :meth:`crops`).
            dtype: ``float32`` or ``float16`` rows.

        Returns:
            (sum n_i, dim) L2-normalised embeddings, in the order of the boxes.
        """
        uploaded = pixels if pixels is not None else [None] * len(items)
        crops = [
            self.crops(image, boxes, px)
            for (image, boxes), px in zip(items, uploaded, strict=True)
            if len(boxes)
        ]
        if not crops:
            return np.zeros((0, self.dim), dtype)
        return self.embed_inputs(torch.cat(crops), dtype)


def _resize(crop: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize a (1, 3, h, w) float crop (antialiased where torch can); values stay in 0..255."""
    if mode == "nearest" or mode == "area":
        return F.interpolate(crop, size, mode=mode)
    out = F.interpolate(crop, size, mode=mode, antialias=True)
    return out.clamp_(0, 255) if mode == "bicubic" else out


def crop_boxes(image: DecodedImage, boxes: np.ndarray, margin: float) -> np.ndarray:
    """Return crop rectangles in decoded-array pixels: boxes grown by ``margin``, on whole pixels.

    The re-ID trainer must cut its crops the same way (then resize to the input size, antialiased).

    Args:
        image: the decoded image (gives the full-size-to-array scale and the array's bounds).
        boxes: (n, 4) x1, y1, x2, y2 in full-size upright pixels.
        margin: fraction of the box's width (height) added on each side.

    Returns:
        (n, 4) int64 x0, y0, x1, y1 (x1, y1 exclusive) inside the array, at least one pixel wide.
    """
    h, w = image.array.shape[:2]
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] /= image.scale_x
    b[:, [1, 3]] /= image.scale_y
    dx = (b[:, 2] - b[:, 0]) * margin
    dy = (b[:, 3] - b[:, 1]) * margin
    x0 = np.clip(np.floor(b[:, 0] - dx), 0, w - 1)
    y0 = np.clip(np.floor(b[:, 1] - dy), 0, h - 1)
    x1 = np.clip(np.ceil(b[:, 2] + dx), x0 + 1, w)
    y1 = np.clip(np.ceil(b[:, 3] + dy), y0 + 1, h)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def _load_weights(model: torch.nn.Module, config: EmbedderConfig) -> tuple[str, str, str | None]:
    """Load weights into ``model``; return (kind, model version, warning or None)."""
    spec = config.weights.strip()
    if spec == "random":
        warning = (
            "re-ID weights are random (DEER_REID_WEIGHTS=random): embeddings carry no identity "
            "information; set DEER_REID_WEIGHTS to a trained state_dict for real re-identification"
        )
        return "random", weights_version("random", config.seed), warning
    if spec == "imagenet":
        return "imagenet", _load_imagenet(model), None
    if not os.path.isfile(spec):
        raise EmbedderWeightsError(f"re-ID weights not found: {spec} ({SPEC_HELP})")
    try:
        state = torch.load(spec, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        OSError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        struct.error,
    ) as exc:
        raise EmbedderWeightsError(f"cannot read re-ID weights {spec}: {exc}") from exc
    _load_state_dict(model, state, spec)
    return "state_dict", weights_version(spec), None


def _load_imagenet(model: torch.nn.Module) -> str:
    """Load torchvision's ImageNet weights (cached or downloaded); return the file's version."""
    weights = ResNet50_Weights.IMAGENET1K_V2
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise EmbedderWeightsError(
            f"torchvision's ImageNet ResNet50 weights are not cached and cannot be downloaded "
            f"({exc}); set DEER_REID_WEIGHTS to a state_dict path or 'random'"
        ) from exc
    _load_state_dict(model, state, "imagenet")
    return weights_version("imagenet")


def _load_state_dict(model: torch.nn.Module, state: object, source: str) -> None:
    """Load a ResNet50 state_dict (any wrapping, prefix, dtype; no ``fc``; maybe a projection)."""
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EmbedderWeightsError(f"{source}: not a state_dict of tensors")
    try:  # the re-ID model's own projection, if the file has one, takes the fc slot
        state, model.fc = split_projection(state, source)
    except ProjectionError as exc:
        raise EmbedderWeightsError(str(exc)) from exc
    clean = {}
    for key, value in state.items():
        name = key.removeprefix("module.").removeprefix("backbone.")
        if not name.startswith("fc."):
            clean[name] = value.float() if value.is_floating_point() else value
    try:
        result = model.load_state_dict(clean, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise EmbedderWeightsError(f"{source}: not a ResNet50 state_dict ({exc})") from exc
    if result.missing_keys or result.unexpected_keys:
        raise EmbedderWeightsError(
            f"{source}: not a ResNet50 state_dict (missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )
