"""One streaming pass from image files to detections and embeddings, in bounded memory.

Three things overlap: decode workers (a thread pool: Pillow, libjpeg and OpenCV release the GIL)
read, decode and letterbox images ahead of the model; one inference thread detects and embeds batch
after batch; the caller consumes finished batches (writes them to the database) while the next
batch is inferred. Queues are bounded at every step, so at most a few batches of images are held at
once whatever the size of the partition. Each stage's seconds are accumulated in
:class:`StageTimes`, so the caller can report where the time went.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from deer_pipeline.vision.decode import DecodeError, decode_file
from deer_pipeline.vision.detector import Detector, ImageDetections, PreparedImage
from deer_pipeline.vision.embedder import Embedder

# Re-ID crops need more pixels than the detector: the decoded long side stays at least this when
# embeddings are computed (a 1920x1080 frame is then decoded at full size, a 4000x3000 one at half).
REID_MIN_LONG_SIDE = 1280
_DONE = object()


@dataclass
class StageTimes:
    """Seconds spent per stage; the decode figure is summed over the workers (can exceed wall time).

    Attributes:
        decode_s: worker seconds reading, decoding and letterboxing.
        detect_s: inference-thread seconds in the detector (upload, forward, NMS).
        embed_s: inference-thread seconds cutting crops and in the embedder.
        wait_input_s: inference-thread seconds waiting for decoded images (decode too slow).
        wait_output_s: inference-thread seconds waiting for the caller to take a batch (caller
            too slow, e.g. database writes).
        elapsed_s: wall seconds from the first request to the last batch handed over.
        images: images decoded and inferred.
        failed: images that could not be decoded.
        detections: boxes found.
    """

    decode_s: float = 0.0
    detect_s: float = 0.0
    embed_s: float = 0.0
    wait_input_s: float = 0.0
    wait_output_s: float = 0.0
    elapsed_s: float = 0.0
    images: int = 0
    failed: int = 0
    detections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_decode(self, seconds: float) -> None:
        """Add worker seconds (thread-safe)."""
        with self._lock:
            self.decode_s += seconds

    @property
    def images_per_s(self) -> float:
        """Images (decoded or failed) per wall second."""
        done = self.images + self.failed
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        """Return the figures as a plain dict (for metadata and JSON)."""
        keys = ("decode_s", "detect_s", "embed_s", "wait_input_s", "wait_output_s", "elapsed_s")
        out: dict[str, float] = {k: round(getattr(self, k), 4) for k in keys}
        out.update(images=self.images, failed=self.failed, detections=self.detections)
        out["images_per_s"] = round(self.images_per_s, 3)
        return out


@dataclass
class BatchResult:
    """What one batch produced; detection rows and embedding rows are aligned.

    Attributes:
        image_ids: ids of the images inferred in this batch (with or without boxes).
        det_image_id: (n,) int64 image id of each detection.
        det_index: (n,) int32 rank of the detection within its image, by confidence.
        class_name: n class names.
        confidence: (n,) float32.
        boxes: (n, 4) float32 x1, y1, x2, y2 in full-size upright pixels.
        embeddings: (n, 2048) float32 or float16, L2-normalised; None without an embedder.
        failures: (image id, reason) of images that could not be decoded.
        sizes: image id -> full-size upright (width, height) of each inferred image.
        class_scores: per detection, stored class name -> score (see ``ImageDetections``), None
            for a box without per-class scores; None altogether when no box has them.
    """

    image_ids: list[int]
    det_image_id: np.ndarray
    det_index: np.ndarray
    class_name: list[str]
    confidence: np.ndarray
    boxes: np.ndarray
    embeddings: np.ndarray | None
    failures: list[tuple[int, str]]
    sizes: dict[int, tuple[int, int]]
    class_scores: list[dict[str, float] | None] | None = None


@dataclass(frozen=True)
class PipelineConfig:
    """How the streaming pass is run.

    Attributes:
        batch_size: images per batch handed to the caller (and per detector call).
        decode_workers: decode threads; None means the CPU count (at most 16).
        prefetch_batches: batches decoded ahead of the one being inferred.
        decode_long_side: smallest long side of the decoded array; None means the detector's
            ``imgsz``, raised to :data:`REID_MIN_LONG_SIDE` when embeddings are computed.
        embeddings_dtype: ``float32`` or ``float16`` rows in the results.
    """

    batch_size: int = 16
    decode_workers: int | None = None
    prefetch_batches: int = 2
    decode_long_side: int | None = None
    embeddings_dtype: str = "float32"


def default_decode_workers() -> int:
    """Decode threads when none are configured: the CPU count, at most 16."""
    return min(16, os.cpu_count() or 1)


class InferencePipeline:
    """Run the detector and/or the embedder over image files, one batch at a time.

    With a detector, records are (image id, path) and boxes come from the detector. Without one
    (embeddings of stored detections), records are (image id, path, boxes) and the results carry
    the given boxes in the given order (``det_index`` is the position in that list; class names
    are empty and confidences zero).
    """

    def __init__(
        self,
        detector: Detector | None,
        embedder: Embedder | None = None,
        config: PipelineConfig | None = None,
    ):
        """Bind loaded models.

        Args:
            detector: loaded detector, or None to embed given boxes.
            embedder: loaded embedder, or None for detections only.
            config: batching, workers and decode size.

        Raises:
            ValueError: neither model given.
        """
        if detector is None and embedder is None:
            raise ValueError("the pipeline needs a detector, an embedder or both")
        self.detector = detector
        self.embedder = embedder
        self.config = config or PipelineConfig()
        self.times = StageTimes()
        side = self.config.decode_long_side
        if side is None:
            side = detector.config.imgsz if detector is not None else 0
            if embedder is not None:
                side = max(side, REID_MIN_LONG_SIDE)
        self.decode_long_side = side
        self.decode_workers = self.config.decode_workers or default_decode_workers()

    def run(self, records: Iterable[tuple]) -> Iterator[BatchResult]:
        """Stream records through decode, detection and embedding.

        Records are read from a background thread: pass a list or another thread-safe iterable.
        Stopping the iteration early stops the workers. ``self.times`` is updated as batches go.

        Args:
            records: (image id, file path) pairs, or (image id, file path, (n, 4) boxes in
                full-size pixels) without a detector.

        Yields:
            One :class:`BatchResult` per batch, in input order.

        Raises:
            Exception: whatever the inference thread raised (model errors are not swallowed).
        """
        self.times = StageTimes()
        out: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()
        worker = threading.Thread(
            target=self._infer_loop, args=(records, out, stop), name="deer-infer", daemon=True
        )
        start = time.perf_counter()
        worker.start()
        try:
            while True:
                item = out.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                self.times.elapsed_s = time.perf_counter() - start
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a pending put
                try:
                    out.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()
            self.times.elapsed_s = time.perf_counter() - start

    def _infer_loop(self, records, out: queue.Queue, stop: threading.Event) -> None:
        cfg = self.config
        depth = cfg.batch_size * (cfg.prefetch_batches + 1)
        try:
            with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="deer-decode") as pool:
                pending: deque[tuple[int, Future]] = deque()
                source = iter(records)
                exhausted = False
                while not stop.is_set():
                    while not exhausted and len(pending) < depth:
                        record = next(source, None)
                        if record is None:
                            exhausted = True
                            break
                        image_id, path, *given = record
                        if (self.detector is None) != (len(given) == 1):
                            raise ValueError(f"bad record {record!r} for this pipeline")
                        future = pool.submit(self._decode, path)
                        pending.append((image_id, future, *given))
                    if not pending:
                        break
                    batch = [pending.popleft() for _ in range(min(cfg.batch_size, len(pending)))]
                    result = self._infer_batch(batch)
                    waited = time.perf_counter()
                    while not stop.is_set():
                        try:
                            out.put(result, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    self.times.wait_output_s += time.perf_counter() - waited
                for _, future in pending:
                    future.cancel()
            out.put(_DONE)
        except BaseException as exc:  # handed to the caller's thread and re-raised there
            out.put(exc)

    def _decode(self, path: str | os.PathLike) -> PreparedImage:
        start = time.perf_counter()
        try:
            image = decode_file(path, self.decode_long_side)
            if self.detector is None:
                return PreparedImage(image, None)
            return self.detector.prepare(image)
        finally:
            self.times.add_decode(time.perf_counter() - start)

    def _infer_batch(self, batch: list[tuple]) -> BatchResult:
        waited = time.perf_counter()
        ready: list[tuple[int, PreparedImage]] = []
        given: list[np.ndarray] = []
        failures: list[tuple[int, str]] = []
        for image_id, future, *boxes in batch:
            try:
                ready.append((image_id, future.result()))
            except DecodeError as exc:
                failures.append((image_id, exc.reason))
                continue
            if boxes:
                given.append(np.asarray(boxes[0], np.float32).reshape(-1, 4))
        self.times.wait_input_s += time.perf_counter() - waited
        if self.detector is not None:
            start = time.perf_counter()
            dets = self.detector.detect_prepared([p for _, p in ready]) if ready else []
            self.times.detect_s += time.perf_counter() - start
        else:
            dets = [ImageDetections(b, np.zeros(len(b), np.float32), [""] * len(b)) for b in given]
        embeddings = None
        if self.embedder is not None:
            start = time.perf_counter()
            embeddings = self.embedder.embed(
                [(p.image, d.boxes) for (_, p), d in zip(ready, dets, strict=True)]
            ).astype(self.config.embeddings_dtype, copy=False)
            self.times.embed_s += time.perf_counter() - start
        self.times.images += len(ready)
        self.times.failed += len(failures)
        self.times.detections += sum(len(d) for d in dets)
        return _assemble([i for i, _ in ready], [p for _, p in ready], dets, embeddings, failures)


def _assemble(
    ids: list[int],
    prepared: list[PreparedImage],
    dets: list[ImageDetections],
    embeddings: np.ndarray | None,
    failures: list[tuple[int, str]],
) -> BatchResult:
    """Flatten per-image detections into aligned column arrays."""
    counts = [len(d) for d in dets]
    n = sum(counts)
    return BatchResult(
        image_ids=ids,
        det_image_id=np.repeat(np.asarray(ids, np.int64), counts),
        det_index=np.concatenate([np.arange(c) for c in counts] or [[]]).astype(np.int32),
        class_name=[name for d in dets for name in d.class_name],
        confidence=np.concatenate([d.confidence for d in dets]) if n else np.zeros(0, np.float32),
        boxes=np.concatenate([d.boxes for d in dets]) if n else np.zeros((0, 4), np.float32),
        embeddings=embeddings,
        failures=failures,
        sizes={i: (p.image.width, p.image.height) for i, p in zip(ids, prepared, strict=True)},
        class_scores=[s for d in dets for s in (d.class_scores or [None] * len(d))],
    )
