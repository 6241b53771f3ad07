"""The detector and the re-ID embedder as Dagster resources, loaded once per run.

Weights and device come from the environment (``DEER_DETECTOR_WEIGHTS``, ``DEER_REID_WEIGHTS``,
``DEER_DEVICE``) unless set in the resource config. Models load in ``setup_for_execution``; a model
that cannot load fails only the steps that use it (a detections-only run does not need re-ID
weights), with the loader's own error.
"""

import os

import dagster as dg
from pydantic import Field, PrivateAttr

from deer_pipeline import config
from deer_pipeline.vision.detector import Detector, DetectorConfig
from deer_pipeline.vision.embedder import Embedder, EmbedderConfig
from deer_pipeline.vision.runtime import file_version


class _ModelResource(dg.ConfigurableResource):
    """Shared loading logic: build in setup, keep the error for the step that needs the model."""

    _model: object = PrivateAttr(default=None)
    _error: BaseException | None = PrivateAttr(default=None)

    def _build(self) -> object:
        raise NotImplementedError

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Load the model once for this run (or remember why it could not be loaded)."""
        try:
            self._model = self._build()
        except (OSError, RuntimeError, ValueError) as exc:  # raised again by get()
            self._error = exc
            if context.log:
                context.log.warning(f"{type(self).__name__}: model not loaded: {exc}")

    def _get(self):
        if self._model is None and self._error is None:
            self._model = self._build()  # used outside a run (tests, scripts)
        if self._error is not None:
            raise self._error
        return self._model


class DetectorResource(_ModelResource):
    """The ultralytics detector (``DEER_DETECTOR_WEIGHTS``) with its thresholds."""

    weights: str | None = Field(
        default=None, description="Weights .pt; default DEER_DETECTOR_WEIGHTS"
    )
    device: str | None = Field(
        default=None, description="auto, cpu, cuda, cuda:N; default DEER_DEVICE"
    )
    conf: float = Field(default=0.25, description="Confidence threshold")
    iou: float = Field(default=0.7, description="NMS IoU threshold")
    imgsz: int = Field(default=640, description="Inference size (long side)")
    batch_size: int = Field(default=32, description="Images per forward pass")
    class_map: dict[str, str] = Field(
        default={},
        description="Detector class -> stored class_name ('' drops the class); empty keeps names",
    )

    def detector_config(self) -> DetectorConfig:
        """Return the library config this resource stands for."""
        return DetectorConfig(
            weights=self.weights or config.detector_weights(),
            class_map={k: (v or None) for k, v in self.class_map.items()} or None,
            conf=self.conf,
            iou=self.iou,
            imgsz=self.imgsz,
            batch_size=self.batch_size,
            device=self.device or config.device_spec(),
        )

    def _build(self) -> Detector:
        return Detector(self.detector_config())

    def get(self) -> Detector:
        """Return the loaded detector (raises the load error if it could not be loaded)."""
        return self._get()


class EmbedderResource(_ModelResource):
    """The ResNet50 re-ID backbone (``DEER_REID_WEIGHTS``: a path, ``imagenet`` or ``random``)."""

    weights: str | None = Field(default=None, description="Weights spec; default DEER_REID_WEIGHTS")
    device: str | None = Field(
        default=None, description="auto, cpu, cuda, cuda:N; default DEER_DEVICE"
    )
    batch_size: int | None = Field(
        default=None, description="Crops per forward pass; default 64 on CUDA, 16 on CPU"
    )
    margin: float = Field(default=0.05, description="Box growth on each side, fraction of the box")
    input_size: int = Field(default=224, description="Network input side (as trained)")

    def embedder_config(self) -> EmbedderConfig:
        """Return the library config this resource stands for."""
        return EmbedderConfig(
            weights=self.weights or config.reid_weights(),
            device=self.device or config.device_spec(),
            batch_size=self.batch_size,
            margin=self.margin,
            input_size=self.input_size,
        )

    def _build(self) -> Embedder:
        return Embedder(self.embedder_config())

    def get(self) -> Embedder:
        """Return the loaded embedder (raises the load error if it could not be loaded)."""
        return self._get()


def weights_version(spec: str) -> str:
    """Version of a weights spec without loading it, for code versions at definition time.

    Args:
        spec: a weights path, ``imagenet`` or ``random``.

    Returns:
        The file's short hash, the spec itself for ``imagenet``/``random``, or ``missing``.
    """
    if spec in ("imagenet", "random"):
        return spec
    return file_version(spec) if os.path.isfile(spec) else "missing"
