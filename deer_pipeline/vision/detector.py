"""Batched deer detection with an ultralytics model on pre-decoded arrays, on the model's device.

``YOLO.predict`` decodes, letterboxes and post-processes in the calling thread, one call at a time,
on the host. Here the model is loaded once (fused; fp16 on CUDA, bf16 autocast on a CPU with
bfloat16 units, see :func:`~deer_pipeline.vision.runtime.resolve_precision`); decode workers hand
over ready uint8 tensors (pinned host memory on CUDA); each image is uploaded once, and letterboxing
(ultralytics' ``LetterBox`` geometry, bilinear resize, grey padding), scaling to 0..1 and
channels-last happen on the device, for the whole batch; NMS runs for the whole batch on the device
too, and one copy per batch brings the kept boxes to the host. The same functions run on a CPU
device. Boxes are mapped with ultralytics' ``scale_boxes`` to the (possibly reduced) decoded array
and then to full-size upright pixels, and clipped; they match ``predict`` on the same pixels (the
resize differs from OpenCV's by rounding only).

In bf16 (or fp16 on the CPU) the network runs under ``torch.autocast`` with channels-last
weights; the head's box decoding (DFL, anchors, strides) and class sigmoid, NMS and box scaling run
in fp32: bf16 keeps 8 bits of mantissa, so box coordinates near 640 computed in bf16 move by up to
2-4 pixels. Measured on the committed model, 2 CPU threads, against fp32 (IoU of each fp32 box with
its bf16 twin): everything in bf16, 14.5 ms/image, worst IoU 0.908 on a synthetic world and 0.862
on the real photos; decoding in fp32, 16.8 ms, 0.979 and 0.865; the whole head in fp32 (its
convolutions too), 20.7 ms, 0.980 and 0.867 (fp32: 34 ms). Decoding in fp32 is the default.

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
from deer_pipeline.vision.runtime import (
    AUTOCAST_DTYPES,
    file_version,
    resolve_device,
    resolve_precision,
)


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
        precision: ``auto`` (fp16 on CUDA, bf16 on a CPU with bfloat16 units, else fp32),
            ``fp32``, ``bf16`` or ``fp16``: fp16 on CUDA holds fp16 weights; otherwise reduced
            precision is autocast around the network, with the detect head in fp32.
        head_fp32: under autocast, run the whole detect head in fp32 (its convolutions too);
            False runs only its box decoding and sigmoid in fp32 (as tight, 20% faster).
        channels_last: channels-last weights; None is ultralytics' default (on for x86 CPUs),
            always on under autocast on the CPU.
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
    precision: str = "auto"
    head_fp32: bool = False
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
        """Load the weights (fused; fp16 on CUDA, bf16 autocast on CPUs with bfloat16 units).

        Args:
            config: weights path, thresholds, device, precision and batch size.

        Raises:
            FileNotFoundError: the weights file does not exist.
            PrecisionError: an unknown precision.
        """
        import_ultralytics()  # offline, no analytics, Pillow's Image.open restored
        from ultralytics.nn.autobackend import AutoBackend

        if not os.path.isfile(config.weights):
            raise FileNotFoundError(f"detector weights not found: {config.weights}")
        self.config = config
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        # fp16 weights on CUDA (as ultralytics does); autocast otherwise
        self.half = self.precision == "fp16" and self.device.type == "cuda"
        self.autocast = AUTOCAST_DTYPES.get(self.precision) if not self.half else None
        channels_last = config.channels_last
        if self.autocast is not None and self.device.type == "cpu":
            channels_last = True  # oneDNN's fast bf16 convolutions want NHWC
        self.model_version = file_version(config.weights)
        self.model = AutoBackend(
            model=config.weights,
            device=self.device,
            fp16=self.half,
            fuse=True,
            verbose=False,
            channels_last=channels_last,
        )
        self.model.eval()
        self.half = bool(self.model.fp16)
        if self.autocast is not None:
            _head_in_fp32(self.model, self.device.type, whole=config.head_fp32)
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
        with torch.autocast(
            self.device.type, self.autocast or torch.float32, enabled=self.autocast is not None
        ):
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
        raw = raw.float()  # NMS and box scaling in fp32 whatever the network ran in
        kept, indices = nms.non_max_suppression(
            raw,
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


def _to_fp32(value):
    """``value`` (tensors, maybe in lists, tuples and dicts) with floating tensors in fp32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_fp32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_fp32(v) for k, v in value.items()}
    return value


def _head_in_fp32(backend: torch.nn.Module, device_type: str, whole: bool) -> None:
    """Make the model's detect head run in fp32 under autocast (its inputs cast up).

    Args:
        backend: ultralytics' ``AutoBackend`` of a PyTorch model.
        device_type: the autocast device type.
        whole: the whole head (its convolutions too); else only box decoding and sigmoid.
    """
    from ultralytics.nn.modules.head import Detect

    network = getattr(backend, "model", None)  # AutoBackend keeps it as a plain attribute
    if not isinstance(network, torch.nn.Module):
        return
    heads = [m for m in network.modules() if isinstance(m, Detect)]
    if not heads:
        return  # not a Detect model: autocast throughout, outputs cast up before NMS
    head = heads[-1]
    name = "forward" if whole else "_inference"
    inner = getattr(head, name)

    def in_fp32(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return inner(*_to_fp32(args), **_to_fp32(kwargs))

    setattr(head, name, in_fp32)
