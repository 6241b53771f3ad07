"""Building a timm re-ID backbone: architecture, weights, output dimension and preprocessing.

The model is created without timm's own weight loading (``pretrained=False``, no classifier), so
nothing is downloaded behind our back; the weights come from the spec's file or the local Hugging
Face cache (``backbones.hub_snapshot``) and load strictly: a checkpoint of another architecture
fails instead of leaving layers random. The preprocessing the model expects (input size, mean and
std, interpolation) is timm's own data config for it (``timm.data.resolve_model_data_config``);
the crop geometry (box plus margin) stays the embedder's.
"""

from __future__ import annotations

import os
import pickle
import struct
from dataclasses import dataclass

import torch

from deer_pipeline.model_versions import timm_version
from deer_pipeline.vision.backbones import (
    HNSW_MAX_DIM,
    EmbedderWeightsError,
    ReidSpec,
    hub_snapshot,
    hub_weights,
    timm_pretrained_repo,
)

# timm's interpolation names -> torch.nn.functional.interpolate modes (PIL-only filters map to the
# nearest quality torch has).
_MODES = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest", "box": "area"}


@dataclass(frozen=True)
class Preprocess:
    """What a backbone expects of a crop.

    Attributes:
        size: (height, width) of the network input.
        mean: per-channel mean of RGB in 0..1.
        std: per-channel standard deviation of RGB in 0..1.
        interpolation: ``torch.nn.functional.interpolate`` mode for the resize.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass
class TimmBackbone:
    """A loaded timm backbone and what the embedder needs to run it."""

    model: torch.nn.Module
    dim: int
    preprocess: Preprocess
    model_version: str


def data_preprocess(model: torch.nn.Module) -> Preprocess:
    """Return the model's own preprocessing from timm's data config."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    _, h, w = cfg["input_size"]
    mode = _MODES.get(str(cfg.get("interpolation", "bilinear")), "bicubic")
    return Preprocess(
        (int(h), int(w)), tuple(map(float, cfg["mean"])), tuple(map(float, cfg["std"])), mode
    )


def create_architecture(spec: ReidSpec, download: bool = True):
    """Create the spec's timm architecture without weights; return (model, weights file or None).

    Args:
        spec: a ``timm`` or ``hf-hub`` spec.
        download: whether an ``hf-hub`` spec may download (never for ``timm``).

    Raises:
        EmbedderWeightsError: missing file, a name timm does not know, weights not cached.
    """
    import timm

    if spec.kind == "hf-hub":
        folder = hub_snapshot(spec.name, download=download)
        if folder is None:
            raise EmbedderWeightsError(f"hf-hub:{spec.name} is not in the local cache")
        model = _create(timm, f"local-dir:{folder}", spec)
        return model, str(hub_weights(folder))
    base = spec.name.split(".", 1)[0]
    if not timm.is_model(base):
        raise EmbedderWeightsError(
            f"timm {timm.__version__} does not know the model {base!r} (timm:{spec.name}); "
            "timm.list_models('*swin*') lists names"
        )
    if spec.file:
        if not os.path.isfile(spec.file):
            raise EmbedderWeightsError(
                f"re-ID checkpoint not found: {spec.file} (timm:{spec.name})"
            )
        return _create(timm, spec.name, spec), spec.file
    repo = timm_pretrained_repo(spec.name)
    folder = hub_snapshot(repo, download=False) if repo else None
    if folder is None:
        hint = f"fetch them once with DEER_REID_WEIGHTS=hf-hub:{repo}" if repo else "timm has none"
        raise EmbedderWeightsError(
            f"timm's pretrained weights for {spec.name} are not in the local Hugging Face cache "
            f"(timm: never downloads; {hint}), or give a file: timm:{spec.name}@<checkpoint>"
        )
    return _create(timm, spec.name, spec), str(hub_weights(folder))


def _create(timm, name: str, spec: ReidSpec) -> torch.nn.Module:
    try:
        return timm.create_model(name, pretrained=False, num_classes=0)
    except (RuntimeError, ValueError, TypeError, KeyError, OSError) as exc:
        raise EmbedderWeightsError(f"timm cannot build {spec.kind}:{spec.name}: {exc}") from exc


def output_dim(model: torch.nn.Module, preprocess: Preprocess) -> int:
    """Run one blank input through the model; return its pooled output's dimension.

    Raises:
        EmbedderWeightsError: the output is not one vector per input, or too long for HNSW.
    """
    with torch.inference_mode():
        out = model.eval()(torch.zeros((1, 3, *preprocess.size)))
    if out.ndim != 2:
        raise EmbedderWeightsError(
            f"the model's output is {tuple(out.shape)}, not one pooled vector per crop"
        )
    return int(out.shape[1])


def check_dimension(dim: int, source: str) -> None:
    """Refuse vectors longer than an HNSW index of ``halfvec`` can hold."""
    if dim > HNSW_MAX_DIM:
        raise EmbedderWeightsError(
            f"{source} gives {dim}-d vectors; pgvector's HNSW index holds at most "
            f"{HNSW_MAX_DIM} dimensions (halfvec): choose a smaller model or a projection"
        )


def load_timm(spec: ReidSpec, download: bool = True) -> TimmBackbone:
    """Build a timm backbone from a spec: architecture, dimension check, then strict weights.

    Args:
        spec: a ``timm`` or ``hf-hub`` spec.
        download: whether an ``hf-hub`` spec may download when the cache lacks it.

    Returns:
        The model (eval mode, on the CPU), its dimension, preprocessing and model version.

    Raises:
        EmbedderWeightsError: anything that keeps the model from being used, in one line.
    """
    model, weights = create_architecture(spec, download)
    preprocess = data_preprocess(model)
    source = f"{spec.kind}:{spec.name}"
    check_dimension(getattr(model, "head_hidden_size", None) or model.num_features, source)
    dim = output_dim(model, preprocess)  # what it really gives, before any weights are read
    check_dimension(dim, source)
    load_weights(model, weights, source)
    return TimmBackbone(model.eval(), dim, preprocess, timm_version(spec, weights))


def load_weights(model: torch.nn.Module, path: str, source: str) -> None:
    """Load a checkpoint into a timm model; every backbone tensor must be there, and no other.

    Classifier weights (the ``classifier`` names of the model's pretrained config) are ignored:
    the backbone has none.
    """
    from timm.models import load_state_dict

    try:
        state = load_state_dict(path)
    except (
        OSError,
        RuntimeError,
        ValueError,
        EOFError,
        KeyError,
        pickle.UnpicklingError,
        struct.error,
    ) as exc:
        raise EmbedderWeightsError(f"cannot read re-ID checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EmbedderWeightsError(f"{path}: not a state_dict of tensors")
    heads = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    state = {k: v for k, v in state.items() if not any(k.startswith(h + ".") for h in heads)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise EmbedderWeightsError(f"{path} does not fit {source}: {detail}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise EmbedderWeightsError(
            f"{path} does not fit {source} (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})"
        )
