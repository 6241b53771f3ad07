"""Training data for the re-ID backbone: crops of synthetic individuals, augmented on the GPU.

No photos of known individual deer exist for us to train on, and no pretrained weights can be
downloaded, so the backbone learns from synthetic worlds whose individuals keep their look
(coat, patches, scars, ear notches and tags, antlers, fawn spots) across frames, days, nights
and cameras. Several worlds with different seeds give several hundred individuals, which is what
makes the features generalise to animals never seen in training.

Crops are cut once (CPU worker processes) with more context than the embedder uses and stored as
one uint8 tensor; each step then draws P individuals x K crops and augments them on the GPU:
crop jitter and scale, mirror (a deer facing the other way), brightness/contrast/saturation (no
hue shift: coat colour is identity), infrared grayscale, blur, sensor noise and occlusion.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from deer_pipeline.vocabulary import DEER_CLASSES

CLASSES = DEER_CLASSES  # the one vocabulary (deer_pipeline.vocabulary)
STORE_MARGIN = 0.15  # context kept around each box (the embedder uses 0.05)
MIN_SIDE = 12  # boxes evaluated (about what the detector still finds)
MIN_VISIBLE = 0.25
TRAIN_MIN_SIDE = 16  # boxes trained on: tiny or mostly hidden deer teach little but noise
TRAIN_MIN_VISIBLE = 0.35


@dataclass
class CropSet:
    """Crops with their labels.

    Attributes:
        images: (n, 3, s, s) uint8 RGB crops.
        labels: (n,) int64 individual index (0..identities-1).
        classes: (n,) int64 index into ``CLASSES``.
        bursts: (n,) int64 burst index (crops of one burst share it).
        times: (n,) float64 capture time in seconds (for time-ordered evaluation).
        identities: individual names, ``<world>/<id>``.
    """

    images: torch.Tensor
    labels: np.ndarray
    classes: np.ndarray
    bursts: np.ndarray
    times: np.ndarray
    identities: list[str]


def _cut(args) -> list[tuple[np.ndarray, int]]:
    """Worker: crops (grown by STORE_MARGIN, squashed to size x size) of one image's boxes."""
    path, boxes, size = args
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        out = []
        for k, (x1, y1, x2, y2) in boxes:
            dx, dy = (x2 - x1) * STORE_MARGIN, (y2 - y1) * STORE_MARGIN
            rect = (
                max(0, math.floor(x1 - dx)),
                max(0, math.floor(y1 - dy)),
                min(w, math.ceil(x2 + dx)),
                min(h, math.ceil(y2 + dy)),
            )
            crop = im.crop(rect).resize((size, size), Image.BILINEAR)
            out.append((np.asarray(crop).transpose(2, 0, 1).copy(), k))
    return out


def keep_box(box: dict, min_side: float = MIN_SIDE, min_visible: float = MIN_VISIBLE) -> bool:
    """Return whether a ground-truth box is big and visible enough to use."""
    x1, y1, x2, y2 = box["bbox"]
    return (
        x2 - x1 >= min_side
        and y2 - y1 >= min_side
        and float(box.get("visible", 1.0)) >= min_visible
    )


def load_crops(roots: list[Path], size: int, workers: int, min_crops: int = 4) -> CropSet:
    """Cut crops of every usable ground-truth box of several generated worlds.

    Args:
        roots: dataset folders written by ``generate_dataset`` (one world each).
        size: stored crop side in pixels.
        workers: crop-cutting processes.
        min_crops: individuals with fewer usable crops are dropped.

    Returns:
        The crops, labelled by individual (world-qualified, so worlds never share an id).
    """
    tasks, meta = [], []
    for w, root in enumerate(roots):
        truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
        for entry in truth["images"]:
            kept = [b for b in entry["boxes"] if keep_box(b, TRAIN_MIN_SIDE, TRAIN_MIN_VISIBLE)]
            if not kept:
                continue
            boxes = [(len(meta) + j, b["bbox"]) for j, b in enumerate(kept)]
            t = np.datetime64(entry.get("captured_at", "2024-01-01T00:00:00"))
            seconds = float((t - np.datetime64("2024-01-01T00:00:00")) / np.timedelta64(1, "s"))
            meta += [
                (
                    f"w{w}/{b['individual_id']}",
                    CLASSES.index(b["class"]),
                    f"w{w}/{entry.get('burst', entry['file'])}",
                    seconds,
                )
                for b in kept
            ]
            tasks.append((str(root / entry["file"]), boxes, size))
    crops = np.zeros((len(meta), 3, size, size), np.uint8)
    ctx = multiprocessing.get_context("spawn")
    if workers > 1:
        with ctx.Pool(workers) as pool:
            for part in pool.imap_unordered(_cut, tasks, chunksize=16):
                for arr, k in part:
                    crops[k] = arr
    else:
        for task in tasks:
            for arr, k in _cut(task):
                crops[k] = arr
    names = [m[0] for m in meta]
    counts = _count(names)
    keep = np.array([counts[n] >= min_crops for n in names], bool)
    identities = sorted({n for n, k in zip(names, keep, strict=True) if k})
    index = {n: i for i, n in enumerate(identities)}
    bursts = {b: i for i, b in enumerate(sorted({m[2] for m in meta}))}
    sel = np.flatnonzero(keep)
    return CropSet(
        images=torch.from_numpy(crops[sel]),
        labels=np.array([index[meta[i][0]] for i in sel], np.int64),
        classes=np.array([meta[i][1] for i in sel], np.int64),
        bursts=np.array([bursts[meta[i][2]] for i in sel], np.int64),
        times=np.array([meta[i][3] for i in sel], np.float64),
        identities=identities,
    )


def _count(names: list[str]) -> dict[str, int]:
    values, counts = np.unique(np.array(names), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


class PKSampler:
    """Draws batches of P individuals x K crops each (K with replacement when an id is short)."""

    def __init__(self, labels: np.ndarray, p: int, k: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.p, self.k = p, k
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        self.groups = [g for g in np.split(order, bounds) if len(g) >= 2]

    def batch(self) -> np.ndarray:
        """Return crop indices of one batch (P*K)."""
        ids = self.rng.choice(len(self.groups), size=min(self.p, len(self.groups)), replace=False)
        out = [
            self.rng.choice(self.groups[i], self.k, replace=len(self.groups[i]) < self.k)
            for i in ids
        ]
        return np.concatenate(out)


def augment(x: torch.Tensor, out_size: int, gen: torch.Generator) -> torch.Tensor:
    """Augment a uint8 batch on its device; return float RGB 0..255 at ``out_size`` squared.

    The stored crops carry ``STORE_MARGIN`` of context; the central part the embedder would see
    (margin 0.05) is about 85% of the side. Each sample gets its own scale, aspect, shift and
    mirror (one affine resample), colour gains, and with some probability grayscale (infrared),
    blur, noise and an erased rectangle.
    """
    n, dev = x.shape[0], x.device

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(n, *shape, device=dev, generator=gen)

    base = (1 + 2 * 0.05) / (1 + 2 * STORE_MARGIN)
    scale = base * u(0.85, 1.12)
    aspect = torch.exp(u(-0.15, 0.15))
    flip = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = scale * aspect.sqrt() * flip
    theta[:, 1, 1] = scale / aspect.sqrt()
    theta[:, :, 2] = u(-0.07, 0.07, 2)
    grid = F.affine_grid(theta, (n, 3, out_size, out_size), align_corners=False)
    img = F.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    gray = img.mul(torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )
    sat = u(0.75, 1.25, 1, 1, 1)
    img = gray + (img - gray) * sat
    ir = (torch.rand(n, 1, 1, 1, device=dev, generator=gen) < 0.2).float()
    img = img * (1 - ir) + gray.expand_as(img) * ir
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    img = (img - mean) * u(0.7, 1.3, 1, 1, 1) + mean * u(0.7, 1.3, 1, 1, 1)
    blur = torch.rand(n, device=dev, generator=gen) < 0.2
    if blur.any():
        sigma = 0.5 + 1.2 * float(torch.rand(1, device=dev, generator=gen))
        img[blur] = _gaussian_blur(img[blur], sigma)
    noise = (torch.rand(n, 1, 1, 1, device=dev, generator=gen) < 0.2).float() * u(0, 10, 1, 1, 1)
    img = img + noise * torch.randn(img.shape, device=dev, generator=gen)
    img = _erase(img, torch.rand(n, device=dev, generator=gen) < 0.2, gen)
    return img.clamp_(0, 255)


def _gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, -1)
    c = img.shape[1]
    out = F.conv2d(
        F.pad(img, (radius, radius, 0, 0), mode="replicate"),
        k.view(1, 1, 1, -1).expand(c, 1, 1, -1),
        groups=c,
    )
    return F.conv2d(
        F.pad(out, (0, 0, radius, radius), mode="replicate"),
        k.view(1, 1, -1, 1).expand(c, 1, -1, 1),
        groups=c,
    )


def _erase(img: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Fill a random rectangle (2-20% of the area) of the masked samples with noise."""
    n, _, h, w = img.shape
    dev = img.device
    area = 0.02 + 0.18 * torch.rand(n, device=dev, generator=gen)
    ratio = torch.exp(-1 + 2 * torch.rand(n, device=dev, generator=gen))
    eh = (area * ratio).sqrt().clamp(max=1) * h
    ew = (area / ratio).sqrt().clamp(max=1) * w
    y0 = torch.rand(n, device=dev, generator=gen) * (h - eh)
    x0 = torch.rand(n, device=dev, generator=gen) * (w - ew)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (ys >= y0.view(-1, 1, 1))
        & (ys < (y0 + eh).view(-1, 1, 1))
        & (xs >= x0.view(-1, 1, 1))
        & (xs < (x0 + ew).view(-1, 1, 1))
        & mask.view(-1, 1, 1)
    )
    fill = torch.rand(img.shape, device=dev, generator=gen) * 255
    return torch.where(box.unsqueeze(1), fill, img)
