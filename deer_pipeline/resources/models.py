"""The detector and the re-ID embedder as Dagster resources, loaded once per run.

Every field has a visible default (the committed models, device and precision ``auto``); the
definitions declare a field as ``EnvVar("DEER_DETECTOR_WEIGHTS")``, ``EnvVar("DEER_REID_WEIGHTS")``,
``EnvVar("DEER_DEVICE")`` or ``EnvVar("DEER_PRECISION")`` when that variable is set
(``deer_pipeline/resources/__init__.py``), and run config may override any field.
``model_version()`` names the configured weights' version without loading them
(``deer_pipeline/model_versions.py``). Models load in ``setup_for_execution``; a model that cannot
load fails only the steps that use it (a detections-only run does not need re-ID weights), with the
loader's own error.
"""

import dagster as dg
from pydantic import Field, PrivateAttr

from deer_pipeline import config
from deer_pipeline.model_versions import weights_version
from deer_pipeline.vision.backbones import EmbedderWeightsError, parse_spec, weights_file
from deer_pipeline.vision.detector import Detector, DetectorConfig
from deer_pipeline.vision.embedder import Embedder, EmbedderConfig

PRECISION_HELP = (
    "The model's arithmetic: auto (fp16 on CUDA, bf16 on a CPU with bfloat16 units - AMX or "
    "AVX-512 BF16 - else fp32), fp32, bf16 or fp16 (DEER_PRECISION when set)"
)


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

    weights: str = Field(
        default=str(config.DEFAULT_DETECTOR_WEIGHTS),
        description="Weights .pt (DEER_DETECTOR_WEIGHTS when set; default the committed model)",
    )
    device: str = Field(
        default=config.DEFAULT_DEVICE, description="auto, cpu, cuda, cuda:N (DEER_DEVICE when set)"
    )
    precision: str = Field(
        default=config.DEFAULT_PRECISION,
        description=PRECISION_HELP,
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
            weights=self.weights,
            class_map={k: (v or None) for k, v in self.class_map.items()} or None,
            conf=self.conf,
            iou=self.iou,
            imgsz=self.imgsz,
            batch_size=self.batch_size,
            device=self.device,
            precision=self.precision,
        )

    def model_version(self) -> str:
        """The configured weights' model version, without loading them (``missing``: no file)."""
        return weights_version(self.weights)

    def _build(self) -> Detector:
        return Detector(self.detector_config())

    def get(self) -> Detector:
        """Return the loaded detector (raises the load error if it could not be loaded)."""
        return self._get()


class EmbedderResource(_ModelResource):
    """The re-ID backbone (``DEER_REID_WEIGHTS``): the ResNet50 or any timm model."""

    weights: str = Field(
        default=str(config.DEFAULT_REID_WEIGHTS),
        description="A ResNet50 state_dict path, imagenet, random, timm:<model name>[@<checkpoint>]"
        " or hf-hub:<repo> (DEER_REID_WEIGHTS when set; default the committed re-ID model)",
    )
    device: str = Field(
        default=config.DEFAULT_DEVICE, description="auto, cpu, cuda, cuda:N (DEER_DEVICE when set)"
    )
    precision: str = Field(
        default=config.DEFAULT_PRECISION,
        description=PRECISION_HELP,
    )
    batch_size: int | None = Field(
        default=None, description="Crops per forward pass; default 64 on CUDA, 16 on CPU"
    )
    margin: float = Field(default=0.05, description="Box growth on each side, fraction of the box")
    input_size: int | None = Field(
        default=None,
        description="Square network input side; default the model's own (224 for the ResNet50, "
        "a timm model's data config)",
    )

    def embedder_config(self) -> EmbedderConfig:
        """Return the library config this resource stands for."""
        return EmbedderConfig(
            weights=self.weights,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            margin=self.margin,
            input_size=self.input_size,
        )

    def model_version(self) -> str:
        """The configured weights' model version, without loading them (``missing``: no file)."""
        return weights_version(self.weights.strip())

    def weights_file(self) -> str | None:
        """The configured weights file (its calibration sits beside it), or None for none.

        For ``timm:<name>@<file>`` the checkpoint, for ``hf-hub:`` the cached weights file.
        """
        try:
            return weights_file(parse_spec(self.weights))
        except EmbedderWeightsError:
            return None

    def _build(self) -> Embedder:
        return Embedder(self.embedder_config())

    def get(self) -> Embedder:
        """Return the loaded embedder (raises the load error if it could not be loaded)."""
        return self._get()
