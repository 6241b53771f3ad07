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
``python -m deer_workshop.reid_training.train run --out OUT`` and ``... join OUT models/...pt``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from deer_workshop.reid_training.train_data import STORE_MARGIN, load_crops
from deer_workshop.reid_training.train_model import train_backbone
from deer_workshop.reid_training.weights import (
    WEIGHTS_NAME,
    fp16_state_bytes,
    join_parts,
    write_parts,
)


def _worlds(args, work: Path, log) -> tuple[list[Path], Path]:
    from deer_workshop.synthetic import generate_dataset

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
    from deer_workshop.reid_training.train_eval import clustering_sweep, embed_world, retrieval

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
        low_res=args.low_res or None,
        low_res_share=args.low_res_share,
        margin=args.margin,
        log=log,
        precision=args.precision,
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
    parser = argparse.ArgumentParser(prog="python -m deer_workshop.reid_training.train")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="generate worlds, train, evaluate, write parts + JSON")
    r.add_argument("--out", required=True, help="folder for the weight parts and the JSON")
    r.add_argument("--work", default="/tmp/deer_reid_work", help="scratch folder for worlds")
    r.add_argument("--device", default="auto")
    r.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="autocast of the training step (auto: bf16 on CUDA and on CPUs with bfloat16 units)",
    )
    r.add_argument("--workers", type=int, default=16)
    r.add_argument("--train-worlds", type=int, default=6)
    r.add_argument("--train-images", type=int, default=3500, help="images per training world")
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
    r.add_argument("--lr", type=float, default=1.5e-3)
    r.add_argument(
        "--low-res", type=int, default=128, help="input size of the first phase (0: off)"
    )
    r.add_argument("--low-res-share", type=float, default=0.7, help="share of the run at --low-res")
    r.add_argument("--margin", type=float, default=0.25, help="CosFace margin (ramped up)")
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
