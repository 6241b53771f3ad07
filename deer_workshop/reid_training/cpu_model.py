"""The trainable end of the re-ID model on the CPU: ``layer4[2]`` plus the projection, and its loss.

The committed model is ResNet50 plus a linear projection (``deer_pipeline/vision/projection.py``).
On the CPU we fine-tune only what sits after the cached trunk maps (``cpu_data``): the last
bottleneck of ``layer4`` and the projection matrix, starting from the committed weights, with a
soft-margin batch-hard triplet loss and a pull toward the starting weights (L2-SP), so a short run
can only move the model as far as the held-out individuals say it should (early stopping).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deer_pipeline.vision.projection import Projection


class TrainableHead(nn.Module):
    """``layer4[2]`` -> average pool -> ``normalize(W (normalize(x) - mean))``.

    Equal to the tail of the loaded embedder model (``cpu_data.split_model``), with the projection
    weight as a trainable parameter (the product keeps it as a buffer). A model file without a
    projection starts from the identity map and a zero mean.
    """

    def __init__(self, block: nn.Module, fc: nn.Module):
        super().__init__()
        self.block = copy.deepcopy(block)
        if isinstance(fc, Projection):
            mean, weight = fc.mean.clone(), fc.weight.clone()
        else:
            dim = self.block.conv3.out_channels
            mean, weight = torch.zeros(dim), torch.eye(dim)
        self.register_buffer("mean", mean.float())
        self.weight = nn.Parameter(weight.float())
        self.start = {k: v.detach().clone() for k, v in self.named_parameters()}

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Maps (n, 2048, 7, 7) of ``layer4[1]`` -> unit vectors (n, d_out), float32."""
        return self.project(self.pool(maps))

    def pool(self, maps: torch.Tensor) -> torch.Tensor:
        """The backbone's unit vector (before the projection) of trunk maps."""
        return F.normalize(self.block(maps).float().mean((2, 3)), dim=1)

    def project(self, unit: torch.Tensor) -> torch.Tensor:
        """The projection of backbone unit vectors, in float32."""
        return F.normalize((unit.float() - self.mean) @ self.weight.T, dim=1)

    def train(self, mode: bool = True) -> TrainableHead:
        """Train mode for the parameters, but batch norm keeps its committed statistics."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def drift(self) -> torch.Tensor:
        """Squared distance of the parameters from the starting weights (the L2-SP penalty)."""
        return sum(((p - self.start[k]) ** 2).sum() for k, p in self.named_parameters())


def soft_batch_hard(z: torch.Tensor, labels: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """Soft-margin batch-hard triplet loss on cosine distance of unit rows ``z``.

    ``softplus(scale * (hardest positive distance - hardest negative distance)) / scale``: no
    margin to tune, and the push never stops entirely, so positives keep moving in.
    """
    dist = 1.0 - z @ z.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    pos = dist.masked_fill(~same | eye, -1.0).amax(1)
    neg = dist.masked_fill(same, 4.0).amin(1)
    valid = (same & ~eye).any(1) & (~same).any(1)
    if not valid.any():
        return dist.sum() * 0.0
    return F.softplus(scale * (pos - neg)[valid]).mean() / scale


class ViewBatches:
    """Batches of one world's deer (every class: mixed-class hard negatives) x K views each.

    Per deer: day crops, true infrared night crops (bursts other than the day ones where it can)
    and pseudo-infrared views of its day crops (of other bursts, so a view never meets its own
    source). A deer with no night photo gets more pseudo-infrared views.
    """

    def __init__(self, worlds: list, deer_per_batch: int = 16, views: int = 6, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.p, self.k = deer_per_batch, views
        self.offsets = np.cumsum([0] + [len(w) for w in worlds])
        self.decks: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        for w, off in zip(worlds, self.offsets, strict=False):
            deck = []
            for deer in sorted(set(w.labels.tolist())):
                m = w.labels == deer
                groups = tuple(np.flatnonzero(m & (w.kind == k)) + off for k in (0, 1, 2))
                if sum(len(g) for g in groups[:2]) >= 2:
                    deck.append(groups)
            if len(deck) >= 2:
                self.decks.append(deck)
        weights = np.array([len(d) for d in self.decks], np.float64)
        self.world_p = weights / weights.sum()

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (row indices into the joined worlds, deer index within the batch)."""
        deck = self.decks[self.rng.choice(len(self.decks), p=self.world_p)]
        chosen = self.rng.choice(len(deck), size=min(self.p, len(deck)), replace=False)
        idx, lab = [], []
        for j, d in enumerate(chosen):
            day, night, pseudo = deck[d]
            n_night = min(len(night), self.k // 3) if len(night) else 0
            n_pseudo = min(len(pseudo), self.k // 3 if n_night else self.k // 2)
            n_day = self.k - n_night - n_pseudo
            picks = []
            for group, n in ((day, n_day), (night, n_night), (pseudo, n_pseudo)):
                if n and len(group):
                    picks += self.rng.choice(group, n, replace=len(group) < n).tolist()
            if len(picks) < 2:
                pool = np.concatenate([day, night, pseudo])
                picks = self.rng.choice(pool, self.k, replace=True).tolist()
            idx += picks
            lab += [j] * len(picks)
        return np.array(idx, np.int64), np.array(lab, np.int64)


def train_step(
    head: TrainableHead,
    opt: torch.optim.Optimizer,
    maps: torch.Tensor,
    labels: torch.Tensor,
    drift_weight: float,
    bf16: bool = True,
) -> dict:
    """One optimisation step on a batch of trunk maps; return the loss terms."""
    head.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        z = head(maps.contiguous(memory_format=torch.channels_last))
    triplet = soft_batch_hard(z.float(), labels)
    drift = head.drift()
    loss = triplet + drift_weight * drift
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(head.parameters(), 2.0)
    opt.step()
    return {"loss": loss.item(), "triplet": triplet.item(), "drift": drift.item()}


def projection_step(
    head: TrainableHead,
    opt: torch.optim.Optimizer,
    unit: torch.Tensor,
    labels: torch.Tensor,
    drift_weight: float,
) -> dict:
    """One step on the projection alone, over cached backbone vectors (the block fixed)."""
    z = head.project(unit)
    triplet = soft_batch_hard(z, labels)
    drift = ((head.weight - head.start["weight"]) ** 2).sum()
    loss = triplet + drift_weight * drift
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([head.weight], 2.0)
    opt.step()
    return {"loss": loss.item(), "triplet": triplet.item(), "drift": drift.item()}


@torch.inference_mode()
def pool_maps(head: TrainableHead, feats: np.ndarray, chunk: int = 128) -> torch.Tensor:
    """Backbone unit vectors (before the projection) of cached maps, bf16 autocast."""
    head.eval()
    out = []
    for i in range(0, len(feats), chunk):
        x = torch.from_numpy(feats[i : i + chunk].astype(np.float32))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out.append(head.pool(x.contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(out) if out else torch.zeros((0, head.weight.shape[1]))


@torch.inference_mode()
def embed_maps(head: TrainableHead, feats: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Vectors of cached maps (float32 unit rows), in eval mode, bf16 autocast."""
    head.eval()
    out = []
    for i in range(0, len(feats), chunk):
        x = torch.from_numpy(feats[i : i + chunk].astype(np.float32))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out.append(head(x.contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(out).numpy() if out else np.zeros((0, head.weight.shape[0]), np.float32)
