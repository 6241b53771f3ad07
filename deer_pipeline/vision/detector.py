"""Batched deer detection with an ultralytics model on pre-decoded arrays, on the model's device.

``YOLO.predict`` decodes, letterboxes and post-processes in the calling thread, one call at a
time, on the host. Here the model is loaded once (fused, fp16 on CUDA); decode workers hand over
ready uint8 tensors (pinned host memory on CUDA); each image is uploaded once, and letterboxing
(ultralytics' ``LetterBox`` geometry, bilinear resize, grey padding), scaling to 0..1 and
channels-last happen on the device, for the whole batch; NMS runs for the whole batch on the device
too, and one copy per batch brings the kept boxes to the host. The same functions run on a CPU
device. Boxes are mapped with ultralytics' ``scale_boxes`` to the (possibly reduced) decoded array
and then to full-size upright pixels, and clipped; they match ``predict`` on the same pixels (the
resize differs from OpenCV's by rounding only).

NMS is class-agnostic by default (issue 12): the deer classes look alike, and per-class NMS left
one animal with two boxes of different classes (phantom deer the identity step had to keep apart).
The kept box's score for every class is kept too (``class_scores``), so its class is evidence, not
only the argmax label.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from deer_pipeline.compat.ultralytics import import_ultralytics
from deer_pipeline.vision.decode import DecodedImage
from deer_pipeline.vision.runtime import file_version, resolve_device


@dataclass(frozen=True)
class DetectorConfig:
    """How to load and run the detector.

    Attributes:
        weights: ultralytics weights file (.pt).
        class_map: detector class name -> stored ``class_name``; a name mapped to None, or missing
            from a given map, is dropped. None keeps every class under its own name.
        conf: confidence threshold.
        iou: NMS IoU threshold.
        agnostic: class-agnostic NMS (one box per animal whatever its class).
        imgsz: inference size (long side), a multiple of the model stride.
        batch_size: images per forward pass.
        max_det: most boxes kept per image.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        half: fp16 inference; None means fp16 on CUDA and fp32 on the CPU.
        channels_last: channels-last weights; None is ultralytics' default (on for x86 CPUs).
    """

    weights: str
    class_map: Mapping[str, str | None] | None = None
    conf: float = 0.25
    iou: float = 0.7
    agnostic: bool = True
    imgsz: int = 640
    batch_size: int = 16
    max_det: int = 300
    device: str = "auto"
    half: bool | None = None
    channels_last: bool | None = None


@dataclass
class ImageDetections:
    """Boxes of one image, sorted by confidence (highest first; the index is ``det_index``).

    Attributes:
        boxes: (n, 4) float32 x1, y1, x2, y2 in full-size upright pixels.
        confidence: (n,) float32.
        class_name: n stored class names (after the class map): the argmax class.
        class_scores: per box, stored class name -> the box's score for that class (several
            detector classes mapped to one name keep the highest), or None where the source gives
            one label only (end-to-end models, given boxes).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_name: list[str] = field(default_factory=list)
    class_scores: list[dict[str, float] | None] | None = None

    def __len__(self) -> int:
        return len(self.class_name)


@dataclass
class PreparedImage:
    """A decoded image with its pixels as a host tensor ready to upload.

    Attributes:
        image: the decoded image.
        pixels: (h, w, 3) uint8 RGB tensor sharing or copying ``image.array`` (pinned memory when
            the model is on CUDA); None when not needed.
    """

    image: DecodedImage
    pixels: torch.Tensor | None


def letterbox_geometry(height: int, width: int, imgsz: int, stride: int) -> tuple[int, ...]:
    """Ultralytics' ``LetterBox(imgsz, auto=True, stride)`` geometry for one image.

    Args:
        height: source height.
        width: source width.
        imgsz: inference size (long side).
        stride: model stride.

    Returns:
        (resized height, resized width, padded height, padded width, top, left).
    """
    r = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    dw, dh = (imgsz - new_w) % stride / 2, (imgsz - new_h) % stride / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return new_h, new_w, new_h + top + bottom, new_w + left + right, top, left


class Detector:
    """An ultralytics detector loaded once; thread-safe ``prepare``, batched ``detect``."""

    def __init__(self, config: DetectorConfig):
        """Load the weights (fused; fp16 on CUDA).

        Args:
            config: weights path, thresholds, device and batch size.

        Raises:
            FileNotFoundError: the weights file does not exist.
        """
        import_ultralytics()  # offline, no analytics, Pillow's Image.open restored
        from ultralytics.nn.autobackend import AutoBackend

        if not os.path.isfile(config.weights):
            raise FileNotFoundError(f"detector weights not found: {config.weights}")
        self.config = config
        self.device = resolve_device(config.device)
        self.half = (self.device.type == "cuda") if config.half is None else config.half
        self.model_version = file_version(config.weights)
        self.model = AutoBackend(
            model=config.weights,
            device=self.device,
            fp16=self.half,
            fuse=True,
            verbose=False,
            channels_last=config.channels_last,
        )
        self.model.eval()
        self.half = bool(self.model.fp16)
        self.names: dict[int, str] = dict(self.model.names)
        stride = self.model.stride
        self.stride = int(max(stride)) if hasattr(stride, "__iter__") else int(stride)
        self._out_names = self._map_classes(config.class_map)
        self._keep = sorted(self._out_names)
        self._score_columns: dict[str, list[int]] = {}  # stored name -> detector classes
        for index, name in sorted(self._out_names.items()):
            self._score_columns.setdefault(name, []).append(index)
        self.end2end = bool(getattr(self.model, "end2end", False))

    def _map_classes(self, class_map: Mapping[str, str | None] | None) -> dict[int, str]:
        if class_map is None:
            return dict(self.names)
        return {i: class_map[n] for i, n in self.names.items() if class_map.get(n) is not None}

    def prepare(self, image: DecodedImage) -> PreparedImage:
        """Make a decoded image's host tensor (pinned on CUDA; safe to call from worker threads).

        Args:
            image: the decoded image.

        Returns:
            The image with its pixels ready to upload.
        """
        pixels = torch.from_numpy(np.ascontiguousarray(image.array))
        if self.device.type == "cuda":
            pixels = pixels.pin_memory()
        return PreparedImage(image, pixels)

    def upload(self, item: PreparedImage) -> torch.Tensor:
        """Upload one prepared image to the model's device (the only upload of its pixels).

        Returns:
            (3, h, w) uint8 on the device (a view of the HWC upload).
        """
        return item.pixels.to(self.device, non_blocking=True).permute(2, 0, 1)

    def detect(self, images: Sequence[DecodedImage]) -> list[ImageDetections]:
        """Detect on decoded images (letterboxes them first, in this thread).

        Args:
            images: decoded images.

        Returns:
            One result per image, in order.
        """
        return self.detect_prepared([self.prepare(im) for im in images])

    @torch.inference_mode()
    def detect_prepared(self, items: Sequence[PreparedImage]) -> list[ImageDetections]:
        """Detect on prepared images; images of equal letterboxed shape share a forward pass.

        Args:
            items: prepared images (any number; split into batches of ``batch_size``).

        Returns:
            One result per image, in order.
        """
        return self.detect_uploaded(items, [self.upload(it) for it in items])

    @torch.inference_mode()
    def detect_uploaded(
        self, items: Sequence[PreparedImage], pixels: Sequence[torch.Tensor]
    ) -> list[ImageDetections]:
        """Detect on images already on the device (:meth:`upload`).

        The pipeline keeps ``pixels`` for the re-ID crops.

        Args:
            items: prepared images.
            pixels: their (3, h, w) uint8 device tensors.

        Returns:
            One result per image, in order.
        """
        results: list[ImageDetections | None] = [None] * len(items)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(items):
            h, w = item.image.array.shape[:2]
            geometry = letterbox_geometry(h, w, self.config.imgsz, self.stride)
            groups.setdefault(geometry[2:4], []).append(i)
        step = max(1, self.config.batch_size)
        for indices in groups.values():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                outs = self._forward([items[i] for i in chunk], [pixels[i] for i in chunk])
                for i, out in zip(chunk, outs, strict=True):
                    results[i] = out
        return results  # type: ignore[return-value]

    def _letterbox(self, pixels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Letterbox uploaded images of one padded shape into a (b, 3, H, W) 0..1 batch."""
        geo = [letterbox_geometry(*p.shape[1:], self.config.imgsz, self.stride) for p in pixels]
        dtype = torch.float16 if self.half else torch.float32
        x = torch.full((len(pixels), 3, *geo[0][2:4]), 114.0, dtype=dtype, device=self.device)
        same: dict[tuple, list[int]] = {}  # one resize call per source size
        for i, p in enumerate(pixels):
            same.setdefault((*p.shape, *geo[i][:2]), []).append(i)
        for (_, h, w, new_h, new_w), idx in same.items():
            src = torch.stack([pixels[i] for i in idx]).float()
            if (new_h, new_w) != (h, w):  # OpenCV's INTER_LINEAR, rounded back to 0..255 levels
                src = F.interpolate(src, (new_h, new_w), mode="bilinear", align_corners=False)
                src = src.round_().clamp_(0, 255)
            top, left = geo[idx[0]][4:6]
            x[idx, :, top : top + new_h, left : left + new_w] = src.to(dtype)
        return x.div_(255).contiguous(memory_format=torch.channels_last)

    def _forward(
        self, items: Sequence[PreparedImage], pixels: Sequence[torch.Tensor]
    ) -> list[ImageDetections]:
        from ultralytics.utils import nms, ops

        x = self._letterbox(pixels)
        preds = self.model(x)
        rows, counts, with_scores = self._suppress(preds, nms)
        out = []
        for item, det in zip(items, rows.split(counts), strict=True):
            boxes = ops.scale_boxes(x.shape[2:], det[:, :4].clone(), item.image.array.shape)
            scores = det[:, 6:].numpy() if with_scores else None
            out.append(
                self._to_full_size(item.image, boxes.numpy(), det[:, 4].numpy(), det[:, 5], scores)
            )
        return out

    def _suppress(self, preds, nms) -> tuple[torch.Tensor, list[int], bool]:
        """NMS for the whole batch on the model's device, then one copy to the host.

        Returns:
            (sum n_i, 6 + nc) float32 CPU rows x1, y1, x2, y2, conf, class, then each class's
            score of the kept box (6 columns only for end-to-end models), the boxes per image,
            and whether the per-class scores are present.
        """
        raw = preds[0] if isinstance(preds, (list, tuple)) else preds
        kept, indices = nms.non_max_suppression(
            preds,
            self.config.conf,
            self.config.iou,
            classes=self._keep if len(self._keep) < len(self.names) else None,
            agnostic=self.config.agnostic,
            max_det=self.config.max_det,
            end2end=self.end2end,
            return_idxs=True,
            max_time_img=math.inf,  # its time limit drops the rest of the batch on a busy machine
        )
        nc = len(self.names)
        with_scores = not self.end2end and raw.shape[-1] != 6 and raw.shape[1] >= 4 + nc
        parts = []
        for i, (det, idx) in enumerate(zip(kept, indices, strict=True)):
            det = det[:, :6].float()
            if with_scores:  # raw is (batch, 4 + nc [+ extra], anchors); scores after sigmoid
                det = torch.cat([det, raw[i, 4 : 4 + nc, idx.long().view(-1)].T.float()], 1)
            parts.append(det)
        counts = [len(p) for p in parts]
        return torch.cat(parts).cpu(), counts, with_scores

    def _to_full_size(
        self,
        image: DecodedImage,
        boxes: np.ndarray,
        conf: np.ndarray,
        cls: torch.Tensor,
        scores: np.ndarray | None,
    ) -> ImageDetections:
        keep = [i for i, c in enumerate(cls.int().tolist()) if c in self._out_names]
        names = [self._out_names[int(cls[i])] for i in keep]
        boxes, conf = boxes[keep].astype(np.float32), conf[keep].astype(np.float32)
        order = np.argsort(-conf, kind="stable")
        boxes, conf = boxes[order], conf[order]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] * image.scale_x, 0, image.width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] * image.scale_y, 0, image.height)
        class_scores = None
        if scores is not None:
            kept_scores = scores[keep][order]
            class_scores = [
                {name: round(float(row[ix].max()), 4) for name, ix in self._score_columns.items()}
                for row in kept_scores
            ]
        return ImageDetections(boxes, conf, [names[i] for i in order], class_scores)
