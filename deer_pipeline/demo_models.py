"""Say so when the bundled demo models run on photos that are not the synthetic world.

The committed detector and re-ID weights (``models/deer_detector_demo.pt``,
``models/deer_reid_resnet50.pt``) learned synthetic deer only: on 300 real frames of badgers,
foxes and hares (no deer) the demo detector reported 685 "deer"; on 104 real deer boxes it found
8. A user who skips the README gets phantom deer, so ``deer-pipeline run`` prints one warning line
and the ``detections``/``embeddings`` metadata carries it whenever:

- the configured weights are the demo models, compared by file hash (a copied or renamed demo
  file counts; ``vision.runtime.file_version``), and
- the image root is not a synthetic world: it has no ``ground_truth.json`` carrying the world
  description our generator writes next to the frames (``seed``, ``locations``, ``individuals``).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS, DEFAULT_REID_WEIGHTS

GROUND_TRUTH = "ground_truth.json"  # as deer_workshop.synthetic.dataset writes it
_WORLD_KEYS = ("images", "seed", "locations", "individuals")


@functools.lru_cache(maxsize=16)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    from deer_pipeline.vision.runtime import file_version

    return file_version(path)


def _version(path: str | os.PathLike) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not Path(path).is_file():
        return None
    return _hash(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def is_demo_weights(spec: str | None, demo: Path) -> bool:
    """Whether a weights spec is a file with the same bytes as the bundled demo file ``demo``."""
    if not spec:
        return False
    mine, theirs = _version(spec), _version(demo)
    return mine is not None and mine == theirs


def is_synthetic_world(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a synthetic world: our generator's ``ground_truth.json``.

    The generator streams the frames first and ends the file with the world's ``seed``,
    ``locations`` and ``individuals``; a user's own ground truth lacks them.
    """
    path = Path(root) / GROUND_TRUTH
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and all(k in doc for k in _WORLD_KEYS)


def demo_variables(detector: str | None, reid: str | None) -> list[str]:
    """The environment variables whose configured weights are the bundled demo models."""
    names = []
    if is_demo_weights(detector, DEFAULT_DETECTOR_WEIGHTS):
        names.append("DEER_DETECTOR_WEIGHTS")
    if is_demo_weights(reid, DEFAULT_REID_WEIGHTS):
        names.append("DEER_REID_WEIGHTS")
    return names


def demo_model_warning(
    image_root: str | os.PathLike, detector: str | None, reid: str | None
) -> str | None:
    """One line warning that demo models run on real photos, or None when that is not the case.

    Args:
        image_root: the image root (``DEER_IMAGE_ROOT``).
        detector: the detector weights in use, or None when the detector does not run.
        reid: the re-ID weights spec in use, or None when the embedder does not run.

    Returns:
        The warning naming ``DEER_DETECTOR_WEIGHTS`` and/or ``DEER_REID_WEIGHTS``, or None.
    """
    names = demo_variables(detector, reid)
    if not names or is_synthetic_world(image_root):
        return None
    return (
        f"warning: {' and '.join(names)} {'is' if len(names) == 1 else 'are'} the bundled demo "
        "model(s), trained on synthetic deer only, and these images are not the synthetic world: "
        "expect phantom and missed deer; set "
        f"{' / '.join(names)} to models trained on real photos, or import MegaDetector results "
        "(deer-pipeline import megadetector)"
    )
