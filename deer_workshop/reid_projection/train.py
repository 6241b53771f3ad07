"""Fit the linear projection on frozen backbone vectors with batch-hard triplets across conditions.

The backbone puts one deer's day and infrared night views far apart (median cosine 0.795 against
0.898 day to day) while look-alikes of one class come close (0.845). A linear map on its
normalised vectors, ``normalize(W (x - mean))``, is trained so that:

- positives span conditions: each batch holds P deer of one class x 4 views, 2 by day and 2 by
  night, each from a different burst where the deer has enough bursts (frames of one burst are
  trivially alike and teach nothing);
- negatives are look-alikes: all P deer of a batch share a class, so the hardest negative of an
  anchor is its nearest same-class deer (the matcher never compares across classes anyway);
- ``W`` starts at the identity and a penalty ``reg * ||W - I||^2`` keeps it near there: with a
  few hundred training deer a free 2048x2048 map would learn the training individuals instead of
  the conditions.

Centring on the training mean alone removes the direction all vectors share, which inflates every
cosine; the learned part then rotates the day/night difference out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deer_workshop.reid_projection.worlds import World


@dataclass(frozen=True)
class TrainConfig:
    """Projection training settings (defaults: the committed model's, chosen on worlds 5001, 5102).

    Attributes:
        steps: optimiser steps.
        deer_per_batch: P, deer of one class in a batch.
        margin: triplet margin on cosine similarity.
        reg: weight of ``||W - I||_F^2``.
        lr: Adam learning rate.
        seed: sampling and initialisation seed.
        rank: the map changes only the span of the training vectors' top ``rank`` principal
            directions (99% of their variance at 256; 8x fewer operations per step than the
            full 2048x2048); 0 trains the full matrix.
    """

    steps: int = 800
    deer_per_batch: int = 32
    margin: float = 0.3
    reg: float = 0.02
    lr: float = 3e-3
    seed: int = 0
    rank: int = 256


class ViewSampler:
    """Draws batches of P same-class deer x 4 views (2 day, 2 night, distinct bursts if any)."""

    def __init__(self, world: World, deer_per_batch: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.p = deer_per_batch
        self.views: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self.by_class: dict[str, list[str]] = {}
        for deer in sorted(set(world.labels.tolist())):
            m = world.labels == deer
            day = self._bursts(world, m & ~world.night)
            night = self._bursts(world, m & world.night)
            if sum(len(b) for b in day + night) < 2:
                continue
            self.views[deer] = (day, night)
            self.by_class.setdefault(str(world.classes[m][0]), []).append(deer)
        self.classes = [c for c, ids in self.by_class.items() if len(ids) >= 2]
        weights = np.array([len(self.by_class[c]) for c in self.classes], np.float64)
        self.class_p = weights / weights.sum()

    @staticmethod
    def _bursts(world: World, mask: np.ndarray) -> list[np.ndarray]:
        idx = np.flatnonzero(mask)
        return [idx[world.bursts[idx] == b] for b in np.unique(world.bursts[idx])]

    def _pick(self, bursts: list[np.ndarray], k: int) -> list[int]:
        """Pick ``k`` detections from distinct bursts where there are enough, else any."""
        if not bursts:
            return []
        order = self.rng.permutation(len(bursts))
        return [int(self.rng.choice(bursts[order[i % len(order)]])) for i in range(k)]

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (detection indices, deer index within the batch)."""
        cls = self.classes[self.rng.choice(len(self.classes), p=self.class_p)]
        ids = self.by_class[cls]
        chosen = self.rng.choice(len(ids), size=min(self.p, len(ids)), replace=False)
        idx, lab = [], []
        for k, i in enumerate(chosen):
            day, night = self.views[ids[i]]
            picks = self._pick(day, 2 if night else 4) + self._pick(night, 2 if day else 4)
            idx += picks
            lab += [k] * len(picks)
        return np.array(idx), np.array(lab)


def batch_hard(z: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss on cosine similarity of unit rows ``z``."""
    sim = z @ z.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    hardest_pos = sim.masked_fill(~same | eye, float("inf")).min(1).values
    hardest_neg = sim.masked_fill(same, float("-inf")).max(1).values
    valid = torch.isfinite(hardest_pos) & torch.isfinite(hardest_neg)
    return F.relu(margin + hardest_neg[valid] - hardest_pos[valid]).mean()


def project(x: np.ndarray, mean: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Apply a projection to normalised rows, as ``deer_pipeline.vision.projection`` does."""
    from deer_pipeline.vision.projection import Projection

    with torch.no_grad():
        out = Projection(torch.from_numpy(mean), torch.from_numpy(weight))(torch.from_numpy(x))
    return out.numpy()


def train_projection(
    world: World, config: TrainConfig, log_every: int = 250, init: np.ndarray | None = None
) -> dict:
    """Fit ``W`` (and take the mean) on a training world (several joined by ``concat``).

    Args:
        world: the training vectors.
        config: the settings.
        log_every: steps between history entries.
        init: the starting map (default the identity); the penalty keeps ``W`` near it.

    Returns:
        ``mean`` and ``weight`` (float32 arrays), ``history`` (step, triplet, reg) and
        ``seconds``, ``config``.
    """
    torch.manual_seed(config.seed)
    x = torch.from_numpy(world.embeddings).float()
    mean = x.mean(0)
    xc = x - mean
    dim = x.shape[1]
    start = torch.eye(dim) if init is None else torch.from_numpy(init).float()
    base = xc @ start.T  # the fixed part of every output, computed once
    if config.rank:  # delta = P A P^T in the span of the top principal directions
        basis = torch.linalg.eigh(xc.T @ xc).eigenvectors[:, -config.rank :].contiguous()
    else:
        basis = torch.eye(dim)
    coords = xc @ basis
    # W = start + basis A basis^T; ||basis A basis^T|| = ||A|| (orthonormal columns)
    delta = torch.nn.Parameter(torch.zeros(basis.shape[1], basis.shape[1]))
    # Adam's (coupled) weight decay adds 2 * reg * A to the gradient: the penalty's gradient
    opt = torch.optim.Adam([delta], lr=config.lr, weight_decay=2 * config.reg, fused=True)
    sampler = ViewSampler(world, config.deer_per_batch, config.seed)
    history = []
    t0 = time.perf_counter()
    for step in range(1, config.steps + 1):
        idx, lab = sampler.batch()
        z = F.normalize(base[idx] + (coords[idx] @ delta.T) @ basis.T, dim=1)
        trip = batch_hard(z, torch.from_numpy(lab), config.margin)
        opt.zero_grad()
        trip.backward()
        opt.step()
        if step % log_every == 0 or step == 1 or step == config.steps:
            reg = float(delta.detach().pow(2).sum())
            history.append({"step": step, "triplet": trip.item(), "reg": reg})
    return {
        "mean": mean.numpy(),
        "weight": (start + basis @ delta.detach() @ basis.T).numpy(),
        "history": history,
        "seconds": round(time.perf_counter() - t0, 1),
        "config": asdict(config),
        "train_deer": len(sampler.views),
        "train_detections": len(world),
    }


def fit_wccn(world: World, alpha: float = 0.1) -> dict:
    """Closed-form alternative: within-class covariance normalisation (WCCN), in seconds.

    Each deer's centre is the mean of its day mean and its night mean (where it has both), so
    the within-deer scatter ``S`` is dominated by what changes between conditions and between
    photos of one animal. ``W = (S + alpha * s * I)^(-1/2)``, scaled to the identity as
    ``alpha`` grows (``s`` is the mean eigenvalue of ``S``), shrinks exactly those directions:
    the classic channel compensation of speaker verification.

    Returns:
        ``mean``, ``weight`` (float32 arrays), ``seconds`` and ``config``.
    """
    t0 = time.perf_counter()
    x = world.embeddings.astype(np.float64)
    mean = x.mean(0)
    residuals = []
    for deer in np.unique(world.labels):
        m = world.labels == deer
        parts = [x[m & world.night], x[m & ~world.night]]
        centre = np.mean([p.mean(0) for p in parts if len(p)], axis=0)
        residuals.append(x[m] - centre)
    r = np.concatenate(residuals)
    scatter = r.T @ r / len(r)
    s = np.trace(scatter) / len(scatter)
    values, vectors = np.linalg.eigh(scatter + alpha * s * np.eye(len(scatter)))
    weight = (vectors * np.sqrt((1 + alpha) * s / values)) @ vectors.T
    return {
        "mean": mean.astype(np.float32),
        "weight": weight.astype(np.float32),
        "seconds": round(time.perf_counter() - t0, 1),
        "config": {"method": "wccn", "alpha": alpha},
        "train_deer": int(len(np.unique(world.labels))),
        "train_detections": len(world),
    }
