"""Synthetic worlds as cached re-ID vectors: generate a world, embed its ground-truth boxes, keep.

Training and judging a projection on frozen embeddings needs many worlds of other individuals,
and embedding a 1,200-image world costs a few CPU minutes, so each world is embedded once with the
product's own ``Embedder`` (the same decode size and crop path as the pipeline, the backbone
without any projection) and its vectors and labels are cached in one ``.npz`` per seed.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deer_workshop.reid_training.train_data import keep_box

CACHE_VERSION = 1


@dataclass
class World:
    """Backbone embeddings of every usable ground-truth box of one synthetic world.

    Attributes:
        embeddings: (n, 2048) float32, L2-normalised backbone vectors (no projection).
        labels: (n,) individual ids, ``s<seed>/<id>`` (worlds never share an id).
        classes: (n,) class names.
        bursts: (n,) burst keys, ``s<seed>/<burst>``.
        frames: (n,) image keys (one per photo), ``s<seed>/<file>``.
        night: (n,) bool, the photo is an infrared night frame.
        times: (n,) capture time in seconds.
        seed: the world's seed.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    bursts: np.ndarray
    frames: np.ndarray
    night: np.ndarray
    times: np.ndarray
    seed: int

    def __len__(self) -> int:
        return len(self.labels)


def cache_path(cache: Path, seed: int) -> Path:
    """Return the cache file of one world's seed."""
    return Path(cache) / f"world_{seed}.npz"


def load_world(cache: Path, seed: int) -> World:
    """Load one cached world.

    Raises:
        FileNotFoundError: the world has not been embedded yet.
    """
    with np.load(cache_path(cache, seed), allow_pickle=False) as z:
        return World(
            embeddings=z["embeddings"].astype(np.float32),
            labels=z["labels"],
            classes=z["classes"],
            bursts=z["bursts"],
            frames=z["frames"],
            night=z["night"].astype(bool),
            times=z["times"].astype(np.float64),
            seed=int(z["seed"]),
        )


def concat(worlds: list[World]) -> World:
    """Join several worlds into one (ids stay apart: they carry the seed)."""
    return World(
        embeddings=np.concatenate([w.embeddings for w in worlds]),
        labels=np.concatenate([w.labels for w in worlds]),
        classes=np.concatenate([w.classes for w in worlds]),
        bursts=np.concatenate([w.bursts for w in worlds]),
        frames=np.concatenate([w.frames for w in worlds]),
        night=np.concatenate([w.night for w in worlds]),
        times=np.concatenate([w.times for w in worlds]),
        seed=worlds[0].seed if len(worlds) == 1 else -1,
    )


def embed_world(root: Path, seed: int, weights: str, device: str = "cpu") -> World:
    """Embed every usable ground-truth box of a generated world, as the pipeline would.

    Images are decoded at the pipeline's re-ID size (``REID_MIN_LONG_SIDE``) and cropped and
    embedded by the product's ``Embedder``; the weights' projection, if any, is *not* applied
    (the cache holds backbone vectors, the input of a projection).
    """
    import torch

    from deer_pipeline.vision.decode import decode_file
    from deer_pipeline.vision.embedder import Embedder, EmbedderConfig
    from deer_pipeline.vision.pipeline import REID_MIN_LONG_SIDE

    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    entries = [(e, [b for b in e["boxes"] if keep_box(b)]) for e in truth["images"]]
    entries = [(e, boxes) for e, boxes in entries if boxes]
    embedder = Embedder(EmbedderConfig(weights=weights, device=device))
    embedder.model.fc = torch.nn.Identity()  # backbone vectors: the projection's input
    out, meta = [], []
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(entries), 16):
            chunk = entries[start : start + 16]
            images = list(
                pool.map(lambda it: decode_file(root / it[0]["file"], REID_MIN_LONG_SIDE), chunk)
            )
            items = [
                (im, np.array([b["bbox"] for b in boxes], np.float64))
                for im, (_, boxes) in zip(images, chunk, strict=True)
            ]
            out.append(embedder.embed(items))
            for e, boxes in chunk:
                t = np.datetime64(e["captured_at"]) - np.datetime64("2024-01-01T00:00:00")
                meta += [
                    (
                        f"s{seed}/{b['individual_id']}",
                        b["class"],
                        f"s{seed}/{e['burst']}",
                        f"s{seed}/{e['file']}",
                        bool(e["night"]),
                        float(t / np.timedelta64(1, "s")),
                    )
                    for b in boxes
                ]
    labels, classes, bursts, frames, night, times = (np.array(c) for c in zip(*meta, strict=True))
    return World(
        np.concatenate(out).astype(np.float32),
        labels,
        classes,
        bursts,
        frames,
        night.astype(bool),
        times.astype(np.float64),
        seed,
    )


def build_world(
    cache: Path,
    seed: int,
    weights: str,
    images: int = 1200,
    locations: int = 4,
    work: Path | None = None,
    keep_images: bool = False,
) -> Path:
    """Generate, embed and cache one world (skipped when its cache exists); return the cache.

    Args:
        cache: folder of the ``world_<seed>.npz`` files.
        seed: the world's seed.
        weights: re-ID weights whose backbone embeds the crops.
        images: photos in the world.
        locations: camera locations.
        work: where the JPEGs are written (default ``cache/images_<seed>``).
        keep_images: keep the JPEGs after embedding (they take about 0.35 MB each).
    """
    from deer_workshop.synthetic.dataset import generate_dataset

    target = cache_path(cache, seed)
    if target.exists():
        return target
    root = Path(work) if work else Path(cache) / f"images_{seed}"
    t0 = time.perf_counter()
    if not (root / "ground_truth.json").exists():
        generate_dataset(root, images=images, locations=locations, seed=seed, workers=2)
    t1 = time.perf_counter()
    world = embed_world(root, seed, weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        embeddings=world.embeddings.astype(np.float16),
        labels=world.labels,
        classes=world.classes,
        bursts=world.bursts,
        frames=world.frames,
        night=world.night,
        times=world.times,
        seed=np.int64(seed),
        version=np.int64(CACHE_VERSION),
    )
    tmp.replace(target)
    if not keep_images:
        shutil.rmtree(root)
    print(
        f"world {seed}: {len(world)} boxes, {len(set(world.labels.tolist()))} deer, "
        f"generated in {t1 - t0:.0f} s, embedded in {time.perf_counter() - t1:.0f} s",
        flush=True,
    )
    return target
