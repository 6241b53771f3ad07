"""One streaming pass from image files to detections and embeddings, in bounded memory.

Four things overlap: decode workers (a thread pool: Pillow, libjpeg and OpenCV release the GIL)
read and decode images ahead of the models into ready uint8 tensors (pinned host memory on CUDA);
a detection thread uploads each image once and detects batch after batch on the device; an
embedding thread cuts the re-ID crops from the uploaded images on the device and embeds them, so
batch N+1 is detected while batch N is embedded (on CUDA each thread has its own stream); the
caller consumes finished batches (writes them to the database) meanwhile. Queues are bounded at
every step, so at most a few batches of images are held at once whatever the size of the
partition. Each stage's seconds are accumulated in
:class:`StageTimes`, so the caller can report where the time went.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from deer_pipeline.vision.decode import DecodeError, decode_file
from deer_pipeline.vision.detector import Detector, ImageDetections, PreparedImage
from deer_pipeline.vision.embedder import Embedder
from deer_pipeline.vision.monochrome import is_monochrome

# Re-ID crops need more pixels than the detector: the decoded long side stays at least this when
# embeddings are computed (a 1920x1080 frame is then decoded at full size, a 4000x3000 one at half).
REID_MIN_LONG_SIDE = 1280
_DONE = object()


@dataclass
class StageTimes:
    """Seconds spent per stage; the decode figure is summed over the workers (can exceed wall time).

    Attributes:
        decode_s: worker seconds reading, decoding and letterboxing.
        detect_s: detection-thread seconds in the detector (upload, letterbox, forward, NMS).
        embed_s: embedding-thread seconds cutting crops and in the embedder.
        wait_input_s: detection-thread seconds waiting for decoded images (decode too slow).
        wait_output_s: embedding-thread seconds waiting for the caller to take a batch (caller
            too slow, e.g. database writes).
        wait_detect_s: embedding-thread seconds waiting for a detected batch (detection slower
            than embedding).
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
    wait_detect_s: float = 0.0
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
        keys = (
            "decode_s",
            "detect_s",
            "embed_s",
            "wait_input_s",
            "wait_output_s",
            "wait_detect_s",
            "elapsed_s",
        )
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
        monochrome: (n,) bool, whether each box's region is grey (an infrared frame, see
            ``vision/monochrome.py``); None when not measured.
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
    monochrome: np.ndarray | None = None


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
        detected: queue.Queue = queue.Queue(maxsize=1)  # one batch between the two stages
        stop = threading.Event()
        workers = [
            threading.Thread(
                target=self._infer_loop, args=(records, detected, stop), name="deer-detect"
            ),
            threading.Thread(
                target=self._embed_loop, args=(detected, out, stop), name="deer-embed"
            ),
        ]
        start = time.perf_counter()
        for worker in workers:
            worker.daemon = True
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
            for worker in workers:
                while worker.is_alive():  # unblock a pending put
                    for q in (out, detected):
                        try:
                            q.get_nowait()
                        except queue.Empty:
                            pass
                    worker.join(timeout=0.05)
            self.times.elapsed_s = time.perf_counter() - start

    def _infer_loop(self, records, out: queue.Queue, stop: threading.Event) -> None:
        """Detection stage: decode ahead in the pool, upload and detect batch after batch."""
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
                    _put(out, self._detect_batch(batch), stop)
                for _, future in pending:
                    future.cancel()
            _put(out, _DONE, stop)
        except BaseException as exc:  # handed to the caller's thread and re-raised there
            _put(out, exc, stop)

    def _embed_loop(self, detected: queue.Queue, out: queue.Queue, stop: threading.Event) -> None:
        """Embedding stage: crops and embeddings of each detected batch, then hand it over."""
        try:
            with _stream_for(self.embedder) as stream:
                while not stop.is_set():
                    waited = time.perf_counter()
                    item = _get(detected, stop)
                    self.times.wait_detect_s += time.perf_counter() - waited
                    if item is None or item is _DONE or isinstance(item, BaseException):
                        if item is not None:
                            _put(out, item, stop)
                        return
                    result = self._embed_batch(item, stream)
                    waited = time.perf_counter()
                    _put(out, result, stop)
                    self.times.wait_output_s += time.perf_counter() - waited
        except BaseException as exc:
            _put(out, exc, stop)

    def _decode(self, path: str | os.PathLike) -> PreparedImage:
        start = time.perf_counter()
        try:
            image = decode_file(path, self.decode_long_side)
            if self.detector is None:
                return PreparedImage(image, None)
            return self.detector.prepare(image)
        finally:
            self.times.add_decode(time.perf_counter() - start)

    def _detect_batch(self, batch: list[tuple]) -> tuple:
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
        pixels = None
        if self.detector is not None:
            start = time.perf_counter()
            with _stream_for(self.detector):
                prepared = [p for _, p in ready]
                pixels = [self.detector.upload(p) for p in prepared]  # the one upload per image
                dets = self.detector.detect_uploaded(prepared, pixels) if ready else []
            self.times.detect_s += time.perf_counter() - start
        else:
            dets = [ImageDetections(b, np.zeros(len(b), np.float32), [""] * len(b)) for b in given]
        if self.embedder is None or self.embedder.device != getattr(self.detector, "device", None):
            pixels = None  # crops are uploaded by the embedder itself
        return ready, dets, pixels, failures

    def _embed_batch(self, item: tuple, stream) -> BatchResult:
        ready, dets, pixels, failures = item
        embeddings = None
        if self.embedder is not None:
            start = time.perf_counter()
            if pixels is not None and stream is not None:
                for p in pixels:  # made on the detection stream, read on this one
                    p.record_stream(stream)
            embeddings = self.embedder.embed(
                [(p.image, d.boxes) for (_, p), d in zip(ready, dets, strict=True)],
                pixels,
                self.config.embeddings_dtype,
            )
            self.times.embed_s += time.perf_counter() - start
        self.times.images += len(ready)
        self.times.failed += len(failures)
        self.times.detections += sum(len(d) for d in dets)
        return _assemble([i for i, _ in ready], [p for _, p in ready], dets, embeddings, failures)


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    """Put into a bounded queue, giving up once ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event):
    """Take from a queue; None once ``stop`` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return None


@contextlib.contextmanager
def _stream_for(model):
    """A CUDA stream of this thread's own for the model's device (nothing on the CPU)."""
    device = getattr(model, "device", None)
    if device is None or device.type != "cuda":
        yield None
        return
    stream = torch.cuda.Stream(device)
    with torch.cuda.stream(stream):
        yield stream
    stream.synchronize()


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
        monochrome=np.concatenate(
            [
                is_monochrome(p.image.array, d.boxes, p.image.scale_x, p.image.scale_y)
                for p, d in zip(prepared, dets, strict=True)
            ]
            or [np.zeros(0, bool)]
        ),
    )
