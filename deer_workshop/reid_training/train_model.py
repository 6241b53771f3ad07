"""The re-ID backbone and its training loop: ResNet50 from scratch, CosFace + batch-hard triplet.

The embedder uses the 2048-d pooled ResNet50 feature, L2-normalised, and compares deer by cosine
similarity; so both losses act on exactly that vector: a large-margin cosine classifier over the
training individuals (CosFace) pulls each individual together and apart from the others, and a
batch-hard triplet loss on P x K batches does the same for the hardest pairs of every batch. The
loop runs on a time budget (cosine schedule over elapsed time), mostly at a reduced input size
and then at the embedder's, channels-last, with bf16 autocast on CUDA and on a CPU with bfloat16
units (AMX, AVX-512 BF16: the product's fast path, ``deer_pipeline.vision.runtime``), else fp32.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from deer_pipeline.vision.runtime import AUTOCAST_DTYPES, resolve_precision
from deer_workshop.reid_training.train_data import CropSet, PKSampler, augment

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone() -> nn.Module:
    """ResNet50 from scratch with the classifier removed (2048-d pooled output)."""
    model = resnet50(weights=None, zero_init_residual=True)
    model.fc = nn.Identity()
    return model


class CosFace(nn.Module):
    """Large-margin cosine classifier over training identities (CosFace, s * (cos - m))."""

    def __init__(self, classes: int, dim: int = 2048, scale: float = 30.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return margin-adjusted logits for normalised embeddings."""
        cos = emb @ F.normalize(self.weight, dim=1).t()
        return self.scale * (cos - self.margin * F.one_hot(labels, cos.shape[1]))


def batch_hard_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss on cosine distance (hardest positive and negative per anchor)."""
    dist = 1.0 - emb @ emb.t()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos = dist.masked_fill(~same | eye, -1.0).amax(1)
    neg = dist.masked_fill(same, 4.0).amin(1)
    valid = (same & ~eye).any(1) & (~same).any(1)
    return F.relu(pos - neg + margin)[valid].mean() if valid.any() else dist.sum() * 0.0


def _param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    decay, plain = [], []
    for module in modules:
        for p in module.parameters():
            (decay if p.ndim >= 2 else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0}]


def _shrink(images: torch.Tensor, side: int, chunk: int = 2048) -> torch.Tensor:
    """Resize a uint8 crop store to ``side`` squared (antialiased), chunk by chunk."""
    out = torch.empty((len(images), 3, side, side), dtype=torch.uint8, device=images.device)
    for i in range(0, len(images), chunk):
        x = F.interpolate(
            images[i : i + chunk].float(),
            (side, side),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        out[i : i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _schedule(progress: float, warmup: float = 0.05) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 1%."""
    if progress < warmup:
        return max(progress / warmup, 0.01)
    return max(0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup))), 0.01)


def training_autocast(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of the training step (None: fp32).

    Args:
        device: the training device.
        precision: ``auto`` (bf16 on CUDA, as ever; on the CPU what the product's ``auto`` picks:
            bf16 with bfloat16 units, else fp32), ``fp32``, ``bf16`` or ``fp16``.
    """
    if (precision or "auto").strip().lower() == "auto" and device.type == "cuda":
        return torch.bfloat16  # no loss scaling needed, unlike fp16
    return AUTOCAST_DTYPES.get(resolve_precision(precision, device))


def train_backbone(
    crops: CropSet,
    device: torch.device,
    input_size: int,
    seconds: float,
    p: int = 32,
    k: int = 8,
    lr: float = 1.5e-3,
    max_steps: int | None = None,
    low_res: int | None = 128,
    low_res_share: float = 0.7,
    margin: float = 0.25,
    log=print,
    precision: str = "auto",
) -> tuple[nn.Module, dict]:
    """Train for about ``seconds`` (or exactly ``max_steps``); return (model in eval mode, stats).

    Progress (elapsed time over ``seconds``, or steps over ``max_steps``) drives everything: the
    learning rate (warm-up, cosine), the CosFace margin (ramped up over the first quarter) and the
    input size: ``low_res`` for the first ``low_res_share`` of the run (about three times as many
    steps per second as 224), then ``input_size`` so the network settles at the embedder's size.
    The forward pass runs under autocast in :func:`training_autocast`'s dtype for ``precision``.
    """
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    autocast = training_autocast(device, precision)
    model = build_backbone().to(device, memory_format=torch.channels_last).train()
    head = CosFace(len(crops.identities), margin=0.0).to(device)
    opt = torch.optim.AdamW(_param_groups([model, head], 0.05), lr=lr, betas=(0.9, 0.999))
    stores = {input_size: crops.images.to(device)}
    if low_res and low_res < input_size:
        side = round(stores[input_size].shape[-1] * low_res / input_size)
        stores[low_res] = _shrink(stores[input_size], side)
    labels_all = torch.from_numpy(crops.labels).to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    sampler = PKSampler(crops.labels, p, k)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    step, seen, start = 0, {}, time.perf_counter()
    history, good, size = [], None, None
    while True:
        progress = step / max_steps if max_steps else (time.perf_counter() - start) / seconds
        if progress >= 1:
            break
        new_size = low_res if low_res in stores and progress < low_res_share else input_size
        if new_size != size:
            log(f"re-ID training: input {new_size} px from step {step}")
            size = new_size
        for g in opt.param_groups:
            g["lr"] = lr * _schedule(progress)
        head.margin = margin * min(1.0, progress / 0.25)
        idx = torch.from_numpy(sampler.batch()).to(device)
        batch = augment(stores[size][idx], size, gen).sub_(mean).div_(std)
        batch = batch.contiguous(memory_format=torch.channels_last)
        labels = labels_all[idx]
        with torch.autocast(
            device.type, dtype=autocast or torch.float32, enabled=autocast is not None
        ):
            feat = model(batch)
        emb = F.normalize(feat.float(), dim=1)
        ce = F.cross_entropy(head(emb, labels), labels)
        tri = batch_hard_triplet(emb, labels, 0.3)
        loss = ce + tri
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(list(model.parameters()) + list(head.parameters()), 5.0)
        opt.step()
        step += 1
        seen[size] = seen.get(size, 0) + len(idx)
        if step % 50 == 0:  # the only host sync: check the loss, keep a known-good copy
            value = loss.item()
            if not math.isfinite(value):
                log(f"re-ID training: loss not finite at step {step}; back to the last good copy")
                if good is not None:
                    model.load_state_dict(good)
                break
            if step % 200 == 0:
                good = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.append(
                {
                    "step": step,
                    "size": size,
                    "loss": round(value, 4),
                    "ce": round(ce.item(), 4),
                    "triplet": round(tri.item(), 4),
                }
            )
            elapsed = time.perf_counter() - start
            log(
                f"step {step} ({size} px) loss {value:.3f} (ce {ce.item():.3f}, triplet "
                f"{tri.item():.3f}) lr {opt.param_groups[0]['lr']:.2e} "
                f"{sum(seen.values()) / elapsed:.0f} crops/s"
            )
    _sync(device)
    elapsed = time.perf_counter() - start
    stats = {
        "steps": step,
        "precision": str(autocast or torch.float32).removeprefix("torch."),
        "batch": p * k,
        "seconds": round(elapsed, 1),
        "crops_per_s": round(sum(seen.values()) / elapsed, 1) if elapsed else 0.0,
        "crops_by_size": {str(k): v for k, v in seen.items()},
        "identities": len(crops.identities),
        "crops": int(len(crops.labels)),
        "history": history,
    }
    return model.eval(), stats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
