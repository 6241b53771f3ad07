"""Re-ID backbone specs: what ``DEER_REID_WEIGHTS`` names, where its weights live, timm models.

A spec is one of:

- a file path: a state_dict of the project's ResNet50 (optionally with its projection);
- ``imagenet`` (torchvision's ResNet50 ImageNet weights) or ``random`` (explicit, warns);
- ``timm:<model name>[@<checkpoint file>]``: any timm architecture. With a file, the weights are a
  state_dict of that timm model (``torch.save(model.state_dict())``, a timm training checkpoint or
  ``.safetensors``); without one, timm's own pretrained weights for the name, read from the local
  Hugging Face cache only (this spec never downloads: fetch them once with ``hf-hub:``);
- ``hf-hub:<repo>[@<revision>]``: a timm model published on the Hugging Face hub (``config.json``
  plus weights, e.g. MegaDescriptor). The local cache is used when it has the files; otherwise
  they are downloaded, which needs the internet once.

The backbone's output dimension must be one an HNSW index of ``halfvec`` can hold
(:data:`HNSW_MAX_DIM`). Everything here fails with :class:`EmbedderWeightsError`, one line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

HNSW_MAX_DIM = 4000
"""pgvector's HNSW limit for ``halfvec`` (``vector`` stops at 2000)."""

_HUB_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_HUB_FILES = ["config.json", *_HUB_WEIGHTS]
_TIMM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(@[\w.\-/]+)?$")
SPEC_HELP = (
    "DEER_REID_WEIGHTS takes a state_dict path, 'imagenet', 'random', "
    "'timm:<model name>[@<checkpoint file>]' or 'hf-hub:<repo>'"
)


class EmbedderWeightsError(RuntimeError):
    """The re-ID weights cannot be loaded (malformed spec, missing, offline, wrong model)."""


@dataclass(frozen=True)
class ReidSpec:
    """A parsed weights spec.

    Attributes:
        kind: ``state_dict``, ``imagenet``, ``random``, ``timm`` or ``hf-hub``.
        name: the timm model name (``timm``) or the hub repo, maybe ``@revision`` (``hf-hub``).
        file: the state_dict path (``state_dict``) or the timm checkpoint (``timm``), else ``""``.
    """

    kind: str
    name: str = ""
    file: str = ""

    @property
    def is_timm(self) -> bool:
        """Whether timm builds the model (``timm:`` and ``hf-hub:``)."""
        return self.kind in ("timm", "hf-hub")


def parse_spec(spec: str) -> ReidSpec:
    """Parse a weights spec without touching the file system or the network.

    Args:
        spec: the value of ``DEER_REID_WEIGHTS`` (or the resource's ``weights``).

    Returns:
        The parsed spec.

    Raises:
        EmbedderWeightsError: a ``timm:`` or ``hf-hub:`` spec that is malformed.
    """
    spec = spec.strip()
    if spec in ("imagenet", "random"):
        return ReidSpec(spec)
    if spec.startswith("timm:"):
        name, at, file = spec.removeprefix("timm:").partition("@")
        name, file = name.strip(), file.strip()
        if not _TIMM_NAME.match(name) or (at and not file):
            raise EmbedderWeightsError(
                f"malformed re-ID spec {spec!r}: expected timm:<model name>[@<checkpoint file>], "
                "e.g. timm:swin_tiny_patch4_window7_224@/models/reid.safetensors"
            )
        return ReidSpec("timm", name, os.path.expanduser(file))
    if spec.startswith("hf-hub:"):
        repo = spec.removeprefix("hf-hub:").strip()
        if not _HUB_REPO.match(repo):
            raise EmbedderWeightsError(
                f"malformed re-ID spec {spec!r}: expected hf-hub:<owner>/<repo>[@<revision>], "
                "e.g. hf-hub:BVRA/MegaDescriptor-T-224"
            )
        return ReidSpec("hf-hub", repo)
    if not spec or re.match(r"^[a-z][a-z0-9+.\-]*:[^/\\]", spec):  # an unknown scheme: a typo
        raise EmbedderWeightsError(f"malformed re-ID spec {spec!r}: {SPEC_HELP}")
    return ReidSpec("state_dict", file=spec)


def hub_snapshot(repo: str, download: bool) -> Path | None:
    """Return the local folder of a hub repo's timm files, from the cache or downloaded.

    Args:
        repo: ``owner/name``, maybe ``@revision``.
        download: fetch the files when the cache lacks them (needs the internet).

    Returns:
        The snapshot folder (``config.json`` and the weights), or None when it is not cached and
        ``download`` is False.

    Raises:
        EmbedderWeightsError: ``download`` is True and the files cannot be fetched.
    """
    from huggingface_hub import snapshot_download

    repo_id, _, revision = repo.partition("@")
    kwargs = {"revision": revision or None, "allow_patterns": _HUB_FILES}
    try:
        return _with_weights(Path(snapshot_download(repo_id, local_files_only=True, **kwargs)))
    except (OSError, ValueError):  # LocalEntryNotFoundError: not in the cache
        if not download:
            return None
    try:
        folder = Path(snapshot_download(repo_id, **kwargs))
    except (OSError, ValueError) as exc:  # offline, unknown repo, gated: all OSErrors here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbedderWeightsError(
            f"hf-hub:{repo} is not in the local Hugging Face cache and cannot be downloaded "
            f"({type(exc).__name__}: {reason}); connect to the internet once, or use "
            "timm:<model name>@<checkpoint file>"
        ) from exc
    if _with_weights(folder) is None:
        raise EmbedderWeightsError(
            f"hf-hub:{repo} has no timm weights ({' or '.join(_HUB_WEIGHTS)} with config.json)"
        )
    return folder


def _with_weights(folder: Path) -> Path | None:
    return folder if (folder / "config.json").is_file() and hub_weights(folder) else None


def hub_weights(folder: Path) -> Path | None:
    """Return the weights file of a hub snapshot folder (safetensors first), or None."""
    for name in _HUB_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    return None


def timm_pretrained_repo(name: str) -> str | None:
    """Return the hub repo holding timm's own pretrained weights for a model name, or None."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except (RuntimeError, ValueError):
        return None
    return getattr(cfg, "hf_hub_id", None) if cfg is not None else None


def weights_file(spec: ReidSpec) -> str | None:
    """Return the file that holds a spec's weights when it is on this machine, without loading.

    Never downloads. None for ``random``, ``imagenet`` (torchvision's cache, see
    ``model_versions``) and weights that are not here.
    """
    if spec.kind == "state_dict" or (spec.kind == "timm" and spec.file):
        return spec.file if os.path.isfile(spec.file) else None
    repo = spec.name if spec.kind == "hf-hub" else None
    if spec.kind == "timm":
        repo = timm_pretrained_repo(spec.name)
    if repo is None:
        return None
    folder = hub_snapshot(repo, download=False)
    weights = hub_weights(folder) if folder is not None else None
    return str(weights) if weights is not None else None


def version_prefix(spec: ReidSpec) -> str:
    """The readable part of a timm model's version: ``timm-<name>`` or ``hf-<owner>--<repo>``."""
    if spec.kind == "timm":
        return f"timm-{spec.name}"
    return "hf-" + spec.name.replace("/", "--")
