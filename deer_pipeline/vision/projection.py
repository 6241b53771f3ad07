"""The re-ID model's learned projection: a linear map applied after the backbone, before storing.

The project's re-ID model is a ResNet50 backbone plus, optionally, a 2048x2048 linear map trained on
its frozen embeddings so that one deer's day and infrared night views come together and
look-alikes of one class move apart (``deer_workshop/reid_projection``). Both live in one
state_dict file, the projection under ``projection.mean`` (2048) and ``projection.weight``
(2048x2048), so the file's hash (``runtime.file_version``) versions the whole model. A plain
ResNet50 state_dict (a user's own backbone) has no such keys and embeds as before.

The map takes the backbone's L2-normalised vector ``x`` to ``normalize(W (x - mean))``, always in
float32 (also under fp16 autocast). It sits in the backbone's ``fc`` slot (torchvision's ResNet50
ends with ``flatten`` then ``fc``), so every caller of the model gets projected vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PREFIX = "projection."
KEYS = (PREFIX + "mean", PREFIX + "weight")
_WRAPPERS = ("module.", "backbone.")


class ProjectionError(ValueError):
    """A state_dict holds a projection that is incomplete or of the wrong shape."""


class Projection(nn.Module):
    """``x -> normalize(W (normalize(x) - mean))`` in float32.

    Attributes:
        mean: (d,) the training mean of the backbone's normalised vectors.
        weight: (d_out, d) the linear map.
    """

    def __init__(self, mean: torch.Tensor, weight: torch.Tensor):
        super().__init__()
        # not persistent: the backbone's state_dict keeps its own keys, the file's projection.*
        # keys are read by split_projection
        self.register_buffer("mean", mean.detach().float().reshape(-1).clone(), persistent=False)
        self.register_buffer("weight", weight.detach().float().clone(), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project backbone features (n, d) to unit vectors (n, d_out), in float32."""
        with torch.autocast(features.device.type, enabled=False):
            x = F.normalize(features.float(), dim=1) - self.mean
            return F.normalize(x @ self.weight.T, dim=1)


def split_projection(state: dict, source: str = "state_dict") -> tuple[dict, nn.Module]:
    """Separate the projection from a backbone state_dict.

    Args:
        state: a state_dict of tensors, perhaps with ``projection.mean`` and
            ``projection.weight`` (also under a ``module.`` or ``backbone.`` prefix).
        source: the file or name, for error messages.

    Returns:
        (the state_dict without the projection keys, the :class:`Projection` or
        ``nn.Identity()`` when there is none).

    Raises:
        ProjectionError: only one of the two keys, or shapes that do not fit together.
    """
    rest, found = {}, {}
    for key, value in state.items():
        name = key
        for prefix in _WRAPPERS:
            name = name.removeprefix(prefix)
        if name.startswith(PREFIX):
            found[name] = value
        else:
            rest[key] = value
    if not found:
        return rest, nn.Identity()
    if set(found) != set(KEYS):
        raise ProjectionError(f"{source}: a projection needs exactly {KEYS}, found {sorted(found)}")
    mean, weight = found[KEYS[0]], found[KEYS[1]]
    if weight.dim() != 2 or mean.numel() != weight.shape[1]:
        raise ProjectionError(
            f"{source}: projection shapes do not fit (mean {tuple(mean.shape)}, "
            f"weight {tuple(weight.shape)})"
        )
    return rest, Projection(mean, weight)


def projection_state(mean: torch.Tensor, weight: torch.Tensor, half: bool = True) -> dict:
    """Return the projection's state_dict entries (fp16 by default), to join a backbone's."""
    cast = (lambda t: t.detach().half().cpu()) if half else (lambda t: t.detach().float().cpu())
    return {KEYS[0]: cast(mean.reshape(-1)), KEYS[1]: cast(weight)}
