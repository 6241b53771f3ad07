"""Throughput measurements that separate decoding, the models and the whole streaming pass.

The benchmark reports three rates on the same images: decode-only (files to arrays), model-only
(detector and embedder on inputs prepared beforehand, so no decoding or cropping is timed) and
end-to-end (:class:`InferencePipeline`, without a database). End-to-end close to model-only means
decoding is hidden behind inference.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import torch

from deer_pipeline.vision.decode import decode_file
from deer_pipeline.vision.detector import Detector
from deer_pipeline.vision.embedder import Embedder
from deer_pipeline.vision.pipeline import InferencePipeline, PipelineConfig


def _decoded_shape(path: str, long_side: int | None) -> tuple[int, ...]:
    """Decode one file and return only its shape (what a process pool sends back is small)."""
    return decode_file(path, long_side).array.shape


def decode_only(
    paths: Sequence[str | os.PathLike],
    long_side: int | None,
    workers: int,
    kind: str = "thread",
) -> dict[str, float]:
    """Decode files in a pool and time it.

    Args:
        paths: image files.
        long_side: smallest long side of the decoded arrays (None: full size).
        workers: pool size.
        kind: ``thread`` (arrays stay in this process) or ``process`` (arrays are decoded in
            child processes; only their shapes come back, so this is a lower bound on its cost).

    Returns:
        images, seconds, images_per_s, ms_per_image (per worker).
    """
    pool_cls = {"thread": ThreadPoolExecutor, "process": ProcessPoolExecutor}[kind]
    args = [str(p) for p in paths]
    with pool_cls(workers) as pool:
        list(pool.map(_decoded_shape, args[:workers], [long_side] * workers))  # start workers
        start = time.perf_counter()
        list(pool.map(_decoded_shape, args, [long_side] * len(args), chunksize=4))
        seconds = time.perf_counter() - start
    return {
        "images": len(args),
        "seconds": round(seconds, 4),
        "images_per_s": round(len(args) / seconds, 2),
        "ms_per_image_per_worker": round(1000 * seconds * workers / len(args), 3),
    }


def model_only(
    detector: Detector,
    embedder: Embedder | None,
    paths: Sequence[str | os.PathLike],
    decode_long_side: int | None,
) -> dict[str, float]:
    """Time the models alone on inputs prepared beforehand (all held in memory: keep it small).

    The images are decoded and letterboxed, detected once to find the crops (also a warm-up),
    and the crops cut; then detection over all images and embedding over all crops are timed.

    Args:
        detector: loaded detector.
        embedder: loaded embedder, or None.
        paths: image files (a few hundred at most: their arrays are all held).
        decode_long_side: decode size, as the pipeline would use.

    Returns:
        images, crops, detect_s, embed_s, images_per_s, detect_ms_per_image, embed_ms_per_crop.
    """
    prepared = [detector.prepare(decode_file(p, decode_long_side)) for p in paths]
    dets = detector.detect_prepared(prepared)
    crops = None
    if embedder is not None:
        pieces = [embedder.crops(p.image, d.boxes) for p, d in zip(prepared, dets, strict=True)]
        crops = torch.cat(pieces)
        embedder.embed_inputs(crops[: embedder.batch_size])  # warm-up
    start = time.perf_counter()
    detector.detect_prepared(prepared)
    detect_s = time.perf_counter() - start
    embed_s = 0.0
    if crops is not None and len(crops):
        start = time.perf_counter()
        embedder.embed_inputs(crops)
        embed_s = time.perf_counter() - start
    n_crops = 0 if crops is None else len(crops)
    return {
        "images": len(prepared),
        "crops": n_crops,
        "detect_s": round(detect_s, 4),
        "embed_s": round(embed_s, 4),
        "images_per_s": round(len(prepared) / (detect_s + embed_s), 2),
        "detect_ms_per_image": round(1000 * detect_s / len(prepared), 3),
        "embed_ms_per_crop": round(1000 * embed_s / n_crops, 3) if n_crops else None,
    }


def end_to_end(
    detector: Detector,
    embedder: Embedder | None,
    paths: Sequence[str | os.PathLike],
    config: PipelineConfig | None = None,
) -> dict[str, float]:
    """Run the streaming pass over files without a database and return its stage times.

    Args:
        detector: loaded detector.
        embedder: loaded embedder, or None.
        paths: image files.
        config: pipeline settings.

    Returns:
        :meth:`StageTimes.as_dict` of the run, plus the decode size used.
    """
    pipeline = InferencePipeline(detector, embedder, config)
    for _ in pipeline.run(list(enumerate(paths))):
        pass
    out = pipeline.times.as_dict()
    out["decode_long_side"] = pipeline.decode_long_side
    return out
