"""Write the re-ID model file: the backbone's state_dict plus the projection, in one file.

One file keeps the model versioned by its hash (``deer_pipeline.vision.runtime.file_version``):
embeddings written with and without a projection never mix in the database.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from deer_pipeline.vision.projection import projection_state, split_projection


def write_model(backbone: Path, mean: np.ndarray, weight: np.ndarray, out: Path) -> int:
    """Save ``backbone``'s tensors (any old projection dropped) plus the projection to ``out``.

    Backbone tensors keep their dtype (the committed one is fp16); the projection is fp16.

    Returns:
        The file's size in bytes.
    """
    state = torch.load(backbone, map_location="cpu", weights_only=True)
    state, _ = split_projection(state, str(backbone))
    state |= projection_state(torch.from_numpy(mean), torch.from_numpy(weight), half=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return len(data)
