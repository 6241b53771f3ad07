"""Cached trunk features of synthetic worlds for the CPU fine-tune of the re-ID model.

The CPU can afford to train the last bottleneck of ``layer4`` and the projection, not the whole
ResNet50, so every crop goes through the frozen trunk (``conv1`` .. ``layer4[1]``) once, in bf16
autocast and channels-last, and its (2048, 7, 7) map is cached in fp16 per world.

The crops are the product's own: the committed detector's boxes on the images decoded as the
pipeline decodes them, cut and resized by the product's ``Embedder.crops``; each box is labelled
with the ground-truth individual it overlaps (IoU >= 0.5; unmatched boxes are dropped). Every day
crop also gets pseudo-infrared views made with the renderer's own night physics
(``deer_workshop/synthetic/render.py``): greyscale, ``v * 1.35 * gain + 12`` with a gain of
0.45-1.2, a frame factor of 0.85-1.1, blur and sensor noise of 4-9 grey levels.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deer_workshop.reid_training.train_data import keep_box

CACHE_VERSION = 1
KIND_DAY, KIND_NIGHT, KIND_PSEUDO_IR = 0, 1, 2
LUMA = (0.299, 0.587, 0.114)  # PIL's "L" conversion, as the renderer's night branch uses


@dataclass
class FeatureWorld:
    """Trunk maps of one world's views with their labels.

    Attributes:
        feats: (n, 2048, 7, 7) float16 input maps of ``layer4[2]``.
        labels: (n,) individual ids, ``s<seed>/<id>``.
        classes: (n,) true class names.
        bursts: (n,) burst keys.
        frames: (n,) photo keys.
        kind: (n,) int8, ``KIND_DAY``, ``KIND_NIGHT`` (true infrared) or ``KIND_PSEUDO_IR``.
        source: (n,) int64, for a pseudo-infrared view the row of its day crop, else its own row.
        times: (n,) capture time in seconds.
        seed: the world's seed.
    """

    feats: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    bursts: np.ndarray
    frames: np.ndarray
    kind: np.ndarray
    source: np.ndarray
    times: np.ndarray
    seed: int

    def __len__(self) -> int:
        return len(self.labels)

    def real(self) -> np.ndarray:
        """Mask of the views that are photos (not pseudo-infrared)."""
        return self.kind != KIND_PSEUDO_IR


def split_model(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Split a loaded embedder ResNet50 into (frozen trunk, trainable head).

    The trunk runs ``conv1`` .. ``layer4[1]``; the head is ``layer4[2]``, pooling and the model's
    ``fc`` (the projection, or ``Identity``), so ``head(trunk(x))`` equals ``model(x)``.
    """
    trunk = nn.Sequential(
        model.conv1,
        model.bn1,
        model.relu,
        model.maxpool,
        model.layer1,
        model.layer2,
        model.layer3,
        model.layer4[0],
        model.layer4[1],
    )
    head = nn.Sequential(model.layer4[2], model.avgpool, nn.Flatten(1), model.fc)
    return trunk, head


def pseudo_infrared(crops: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Night views of day crops with the renderer's physics; float RGB 0..255 in, same out.

    Args:
        crops: (n, 3, h, w) float RGB in 0..255.
        gen: random generator (CPU) for gains, blur and noise.

    Returns:
        (n, 3, h, w) float, three equal grey channels.
    """
    n = crops.shape[0]
    luma = torch.tensor(LUMA).view(1, 3, 1, 1)
    grey = (crops * luma).sum(1, keepdim=True).floor()
    gain = 0.45 + 0.75 * torch.rand(n, 1, 1, 1, generator=gen)
    grey = (grey * 1.35 * gain + 12).clamp(max=255)
    sigma = 0.3 + 1.2 * torch.rand(n, generator=gen)
    grey = torch.cat([_blur(g[None], float(s)) for g, s in zip(grey, sigma, strict=True)])
    factor = 0.85 + 0.25 * torch.rand(n, 1, 1, 1, generator=gen)
    noise = (4 + 5 * torch.rand(n, 1, 1, 1, generator=gen)) * torch.randn(grey.shape, generator=gen)
    grey = (grey * factor + noise).clamp(0, 255)
    return grey.expand(-1, 3, -1, -1).contiguous()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))


def _seconds(text: str) -> float:
    t = np.datetime64(text) - np.datetime64("2024-01-01T00:00:00")
    return float(t / np.timedelta64(1, "s"))


def cache_path(cache: Path, seed: int) -> Path:
    """Return the feature cache of one world."""
    return Path(cache) / f"feats_{seed}.npz"


def build_features(
    root: Path,
    seed: int,
    cache: Path,
    weights: str,
    detector_weights: str,
    ir_views: int = 1,
    boxes: str = "detector",
    log=print,
) -> Path:
    """Detect, crop, label and run the trunk over one generated world; cache the maps.

    Args:
        root: the world's folder (``generate_dataset`` output, with ``ground_truth.json``).
        seed: its seed (names the ids and the cache file).
        cache: folder of the caches.
        weights: re-ID model file whose trunk makes the maps.
        detector_weights: the detector whose boxes are cropped.
        ir_views: pseudo-infrared views per day crop.
        boxes: ``detector`` (the detector's boxes, labelled by overlap) or ``truth`` (the
            ground-truth boxes, each side moved by up to 4% of the box, about the detector's
            error; for when the detector is too slow to run over every world).
        log: progress printer.

    Returns:
        The cache file (existing caches are kept).
    """
    from deer_pipeline.reid.metrics import match_boxes
    from deer_pipeline.vision.decode import decode_file
    from deer_pipeline.vision.detector import Detector, DetectorConfig
    from deer_pipeline.vision.embedder import Embedder, EmbedderConfig
    from deer_pipeline.vision.pipeline import REID_MIN_LONG_SIDE

    target = cache_path(cache, seed)
    if target.exists():
        return target
    t0 = time.perf_counter()
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    entries = [e for e in truth["images"] if e["boxes"]]
    detector = (
        Detector(DetectorConfig(weights=detector_weights, device="cpu", batch_size=8))
        if boxes == "detector"
        else None
    )
    jitter = np.random.default_rng([seed, 77])
    embedder = Embedder(EmbedderConfig(weights=weights, device="cpu"))
    trunk, _ = split_model(embedder.model)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1) * 255
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1) * 255
    gen = torch.Generator().manual_seed(seed)
    feats, meta = [], []

    @torch.inference_mode()
    def run_trunk(x: torch.Tensor) -> np.ndarray:
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return trunk(x).float().numpy().astype(np.float16)

    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(entries), 8):
            chunk = entries[start : start + 8]
            images = list(
                pool.map(lambda e: decode_file(root / e["file"], REID_MIN_LONG_SIDE), chunk)
            )
            crops, rows = [], []
            for e, image in zip(chunk, images, strict=True):
                gt = [b for b in e["boxes"] if keep_box(b)]
                truth_boxes = np.array([b["bbox"] for b in gt], np.float64).reshape(-1, 4)
                if detector is not None:
                    found = detector.detect([image])[0].boxes
                else:
                    wh = truth_boxes[:, 2:] - truth_boxes[:, :2]
                    moves = jitter.uniform(-0.04, 0.04, truth_boxes.shape)
                    found = truth_boxes + moves * np.concatenate([wh, wh], axis=1)
                pairs = match_boxes(found.tolist(), truth_boxes.tolist())
                if not pairs:
                    continue
                picked = np.array([found[i] for i, _ in pairs], np.float64)
                crops.append(embedder.crops(image, picked))
                for _, j in pairs:
                    rows.append((e, gt[j]))
            if not crops:
                continue
            x = torch.cat(crops)
            night = torch.tensor([bool(e["night"]) for e, _ in rows])
            views = [x]
            kinds = [np.where(night.numpy(), KIND_NIGHT, KIND_DAY)]
            base = len(meta)
            sources = [np.arange(base, base + len(rows))]
            day = torch.nonzero(~night).flatten()
            for _ in range(ir_views):
                if len(day):
                    views.append(pseudo_infrared(x[day], gen))
                    kinds.append(np.full(len(day), KIND_PSEUDO_IR))
                    sources.append(base + day.numpy())
            feats.append(run_trunk(torch.cat(views)))
            src = np.concatenate(sources)
            kind = np.concatenate(kinds)
            for s, k in zip(src, kind, strict=True):
                e, b = rows[s - base]
                meta.append(
                    (
                        f"s{seed}/{b['individual_id']}",
                        b["class"],
                        f"s{seed}/{e['burst']}",
                        f"s{seed}/{e['file']}",
                        int(k),
                        int(s),
                        _seconds(e["captured_at"]),
                    )
                )
            if (start // 8) % 25 == 0:
                log(f"world {seed}: {start + len(chunk)}/{len(entries)} images, {len(meta)} views")
    # a real view's row is its own source (real rows of a chunk come first, at base + i)
    labels, classes, bursts, frames, kind, source, times = (
        np.array(c) for c in zip(*meta, strict=True)
    )
    real_rows = np.flatnonzero(kind != KIND_PSEUDO_IR)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        feats=np.concatenate(feats),
        labels=labels,
        classes=classes,
        bursts=bursts,
        frames=frames,
        kind=kind.astype(np.int8),
        source=source,
        times=times.astype(np.float64),
        seed=np.int64(seed),
        version=np.int64(CACHE_VERSION),
    )
    tmp.replace(target)
    log(
        f"world {seed}: {len(real_rows)} crops + {len(labels) - len(real_rows)} pseudo-IR views "
        f"of {len(set(labels.tolist()))} deer in {time.perf_counter() - t0:.0f} s"
    )
    return target


def load_features(cache: Path, seed: int) -> FeatureWorld:
    """Load one world's cached maps."""
    with np.load(cache_path(cache, seed), allow_pickle=False) as z:
        return FeatureWorld(
            feats=z["feats"],
            labels=z["labels"],
            classes=z["classes"],
            bursts=z["bursts"],
            frames=z["frames"],
            kind=z["kind"],
            source=z["source"],
            times=z["times"],
            seed=int(z["seed"]),
        )
