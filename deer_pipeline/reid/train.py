"""Train the re-ID backbone from scratch on synthetic individuals (ResNet50, metric learning).

Random ResNet50 features cannot tell individuals apart and ImageNet weights cannot be downloaded
here, so ``deer_reid_resnet50.pt`` is learned: a torchvision ResNet50 (``weights=None``, the
classifier replaced by ``Identity``) whose 2048-d pooled feature, L2-normalised exactly as the
embedder does, is trained with CosFace over several hundred synthetic individuals plus a
batch-hard triplet loss on P x K batches, with AMP (bf16) and channels-last on a GPU. The result
is a plain fp16 state_dict the embedder loads, split into parts small enough to copy off a
remote GPU box (``join`` puts them back together and checks the SHA-256), plus a JSON with the
held-out evaluation and the matching threshold the pipeline should use.

Runs where only torch, torchvision, numpy and Pillow exist (no Dagster, psycopg2, ultralytics):
``python -m deer_pipeline.reid.train run --out OUT`` and ``... join OUT models/...pt``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from deer_pipeline.reid.train_data import STORE_MARGIN, CropSet, PKSampler, augment, load_crops

WEIGHTS_NAME = "deer_reid_resnet50.pt"
PART_BYTES = 15 * 1024 * 1024  # files coming back from the GPU box are limited to 16 MiB
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


def train_backbone(
    crops: CropSet,
    device: torch.device,
    input_size: int,
    seconds: float,
    p: int = 32,
    k: int = 8,
    lr: float = 1e-3,
    max_steps: int | None = None,
    log=print,
) -> tuple[nn.Module, dict]:
    """Train for about ``seconds`` (or ``max_steps``) and return (model in eval mode, stats)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    cuda = device.type == "cuda"
    model = build_backbone().to(device, memory_format=torch.channels_last).train()
    head = CosFace(len(crops.identities)).to(device)
    opt = torch.optim.AdamW(_param_groups([model, head], 0.05), lr=lr, betas=(0.9, 0.999))
    images = crops.images.to(device)
    labels_all = torch.from_numpy(crops.labels).to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    sampler = PKSampler(crops.labels, p, k)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    total = max_steps or 10_000_000
    step, bad, seen, start, timed_from = 0, 0, 0, time.perf_counter(), None
    history = []
    while step < total:
        if step == 10 and max_steps is None:  # measure speed, then fit the schedule to the budget
            _sync(device)
            timed_from = (time.perf_counter(), step)
        if step == 30 and max_steps is None and timed_from:
            _sync(device)
            per_step = (time.perf_counter() - timed_from[0]) / (step - timed_from[1])
            total = max(step + 1, int((seconds - (time.perf_counter() - start)) / per_step) + step)
            log(f"re-ID training: {per_step * 1000:.0f} ms/step, schedule {total} steps")
        warm = max(10, int(0.06 * min(total, 5000)))
        factor = (
            (step + 1) / warm
            if step < warm
            else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        )
        for g in opt.param_groups:
            g["lr"] = lr * max(factor, 0.01)
        idx = torch.from_numpy(sampler.batch()).to(device)
        batch = augment(images[idx], input_size, gen).sub_(mean).div_(std)
        batch = batch.contiguous(memory_format=torch.channels_last)
        labels = labels_all[idx]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            feat = model(batch)
        emb = F.normalize(feat.float(), dim=1)
        ce = F.cross_entropy(head(emb, labels), labels, label_smoothing=0.1)
        tri = batch_hard_triplet(emb, labels, 0.3)
        loss = ce + tri
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            bad += 1
            if bad > 20:
                log("re-ID training: loss is not finite, stopping early")
                break
            step += 1
            continue
        loss.backward()
        nn.utils.clip_grad_norm_(list(model.parameters()) + list(head.parameters()), 5.0)
        opt.step()
        step += 1
        seen += len(idx)
        if step % 50 == 0 or step == total:
            history.append(
                {
                    "step": step,
                    "loss": round(loss.item(), 4),
                    "ce": round(ce.item(), 4),
                    "triplet": round(tri.item(), 4),
                }
            )
            elapsed = time.perf_counter() - start
            log(
                f"step {step}/{total} loss {loss.item():.3f} (ce {ce.item():.3f}, triplet "
                f"{tri.item():.3f}) {seen / elapsed:.0f} crops/s"
            )
    _sync(device)
    elapsed = time.perf_counter() - start
    stats = {
        "steps": step,
        "batch": p * k,
        "seconds": round(elapsed, 1),
        "crops_per_s": round(seen / elapsed, 1) if elapsed else 0.0,
        "skipped_steps": bad,
        "identities": len(crops.identities),
        "crops": int(len(crops.labels)),
        "history": history,
    }
    return model.eval(), stats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fp16_state_bytes(model: nn.Module) -> bytes:
    """Serialise the backbone as a plain fp16 state_dict (integer buffers unchanged)."""
    state = {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu()
        for k, v in model.state_dict().items()
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def write_parts(
    data: bytes, out: Path, name: str = WEIGHTS_NAME, part_bytes: int = PART_BYTES
) -> dict:
    """Split ``data`` into ``name.part0..N`` under ``out``; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(0, max(1, math.ceil(len(data) / part_bytes))):
        part = out / f"{name}.part{i}"
        part.write_bytes(data[i * part_bytes : (i + 1) * part_bytes])
        parts.append(part.name)
    return {
        "name": name,
        "parts": parts,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def join_parts(src: Path, dest: Path) -> Path:
    """Join ``deer_reid_resnet50.pt.part*`` from ``src`` into ``dest`` and check the SHA-256.

    The JSON written next to the parts (``deer_reid_resnet50.json``) is copied next to ``dest``
    (it carries the matching threshold the pipeline reads).

    Raises:
        ValueError: parts are missing or the joined bytes do not match the recorded digest.
    """
    meta_path = src / Path(WEIGHTS_NAME).with_suffix(".json").name
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    manifest = meta["weights"]
    data = b"".join((src / name).read_bytes() for name in manifest["parts"])
    if len(data) != manifest["bytes"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise ValueError(f"joined weights do not match the manifest in {meta_path}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    dest.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return dest


def _worlds(args, work: Path, log) -> tuple[list[Path], Path]:
    from deer_pipeline.synthetic import generate_dataset

    roots = []
    plan = [
        (work / f"train{k}", args.train_images, args.locations, args.seed + k)
        for k in range(args.train_worlds)
    ]
    plan.append((work / "heldout", args.eval_images, args.eval_locations, args.eval_seed))
    for root, images, locations, seed in plan:
        if not (root / "ground_truth.json").exists():
            summary = generate_dataset(
                root,
                images=images,
                locations=locations,
                seed=seed,
                width=args.width,
                height=args.height,
                workers=args.workers,
            )
            log(
                f"world {root.name}: {summary['images']} images, {summary['individuals']} "
                f"individuals, {summary['boxes']} boxes in {summary['seconds']} s"
            )
        roots.append(root)
    return roots[:-1], roots[-1]


def run(args) -> dict:
    """Generate worlds, train, evaluate on the held-out world, write parts and the JSON."""
    from deer_pipeline.reid.train_eval import clustering_sweep, embed_world, retrieval

    def log(msg: str) -> None:
        print(msg, flush=True)

    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    work, out = Path(args.work), Path(args.out)
    t0 = time.perf_counter()
    train_roots, heldout = _worlds(args, work, log)
    t_data = time.perf_counter()
    store = int(round(args.input_size * (1 + 2 * STORE_MARGIN) / 1.1))
    crops = load_crops(train_roots, store, args.workers)
    log(
        f"crops: {len(crops.labels)} of {len(crops.identities)} individuals "
        f"({time.perf_counter() - t_data:.0f} s)"
    )
    model, stats = train_backbone(
        crops,
        device,
        args.input_size,
        args.train_seconds,
        p=args.batch_p,
        k=args.batch_k,
        lr=args.lr,
        max_steps=args.steps,
        log=log,
    )
    del crops
    data = fp16_state_bytes(model)
    local = work / WEIGHTS_NAME
    local.write_bytes(data)
    evalset = embed_world(heldout, str(local), str(device), args.input_size, args.workers)
    metrics = {"retrieval": retrieval(evalset), "clustering": clustering_sweep(evalset)}
    chosen = metrics["clustering"]["chosen"]
    meta = {
        "match_threshold": chosen["threshold"],
        "heldout": metrics,
        "training": stats,
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "torch": torch.__version__,
        "device": str(device),
        "weights": write_parts(data, out),
        "seconds_total": round(time.perf_counter() - t0),
    }
    (out / Path(WEIGHTS_NAME).with_suffix(".json").name).write_text(json.dumps(meta, indent=1))
    log(
        f"held-out: rank-1 {metrics['retrieval']['rank1']:.3f}, mAP "
        f"{metrics['retrieval']['mAP']:.3f}; threshold {chosen['threshold']}: B-cubed precision "
        f"{chosen['precision']:.3f}, recall {chosen['recall']:.3f} "
        f"({chosen['deer_found']} deer found, {metrics['clustering']['deer_true']} true)"
    )
    return meta


def main(argv: list[str] | None = None) -> int:
    """Command line: ``run`` (train and evaluate) or ``join`` (reassemble the weights)."""
    parser = argparse.ArgumentParser(prog="python -m deer_pipeline.reid.train")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="generate worlds, train, evaluate, write parts + JSON")
    r.add_argument("--out", required=True, help="folder for the weight parts and the JSON")
    r.add_argument("--work", default="/tmp/deer_reid_work", help="scratch folder for worlds")
    r.add_argument("--device", default="auto")
    r.add_argument("--workers", type=int, default=16)
    r.add_argument("--train-worlds", type=int, default=6)
    r.add_argument("--train-images", type=int, default=4000, help="images per training world")
    r.add_argument("--locations", type=int, default=12, help="locations per training world")
    r.add_argument("--seed", type=int, default=1000, help="seed of the first training world")
    r.add_argument("--eval-images", type=int, default=1500)
    r.add_argument("--eval-locations", type=int, default=6)
    r.add_argument("--eval-seed", type=int, default=9000)
    r.add_argument("--width", type=int, default=1280)
    r.add_argument("--height", type=int, default=720)
    r.add_argument("--input-size", type=int, default=224)
    r.add_argument("--train-seconds", type=float, default=180.0)
    r.add_argument("--steps", type=int, default=None, help="fixed step count (smoke runs)")
    r.add_argument("--batch-p", type=int, default=32)
    r.add_argument("--batch-k", type=int, default=8)
    r.add_argument("--lr", type=float, default=1e-3)
    j = sub.add_parser("join", help="join weight parts into one state_dict file")
    j.add_argument("src", help="folder with the parts and deer_reid_resnet50.json")
    j.add_argument("dest", nargs="?", default="models/" + WEIGHTS_NAME)
    args = parser.parse_args(argv)
    if args.cmd == "join":
        path = join_parts(Path(args.src), Path(args.dest))
        print(f"joined {path} ({path.stat().st_size} bytes, SHA-256 checked)")
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
