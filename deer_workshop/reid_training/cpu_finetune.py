"""Fine-tune the committed re-ID model on the CPU: layer4[2] and projection, day and night together.

One command reproduces the model on a 2-core machine::

    python -m deer_workshop.reid_training.cpu_finetune run --work DIR --out MODEL.pt
        --train 6301-6306 --val 6307 --minutes 25  (one line)

``run`` = ``prepare`` (generate the synthetic worlds, detect or take their boxes, cache the frozen
trunk's maps of every crop and of pseudo-infrared views of every day crop: ``cpu_data``) then
``train`` (soft-margin batch-hard triplets over mixed-class batches of one world's deer, each with
day, true infrared night and pseudo-infrared views; L2-SP toward the committed weights; the
held-out individuals of the validation worlds judged every ``--eval-every`` steps, step 0 being
the committed model; the best state kept as a checkpoint) then ``export`` (the committed file
with ``layer4.2`` and the projection replaced; a new file, hence a new model version).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS, DEFAULT_REID_WEIGHTS
from deer_workshop.reid_projection.evaluate import (
    clustering_sweep,
    day_night_gap,
    oracle,
    retrieval,
)
from deer_workshop.reid_projection.worlds import World
from deer_workshop.reid_training.cpu_data import (
    KIND_NIGHT,
    build_features,
    load_features,
    split_model,
)
from deer_workshop.reid_training.cpu_model import (
    TrainableHead,
    ViewBatches,
    embed_maps,
    pool_maps,
    projection_step,
    train_step,
)

HEAD_PREFIX = "layer4.2."


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def load_head(weights: str) -> TrainableHead:
    """The trainable tail of a re-ID model file (``layer4[2]`` + its projection)."""
    from deer_pipeline.vision.embedder import Embedder, EmbedderConfig

    model = Embedder(EmbedderConfig(weights=weights, device="cpu")).model
    _, tail = split_model(model)
    return TrainableHead(tail[0], tail[3])


def judge(head: TrainableHead, world, unit: torch.Tensor | None = None) -> dict:
    """Held-out figures of one feature world's real crops (no pseudo-infrared views).

    ``unit``: the real crops' backbone vectors when the block is fixed (projection phase).
    """
    real = world.real()
    if unit is None:
        vectors = embed_maps(head, world.feats[real])
    else:
        with torch.no_grad():
            vectors = head.project(unit).numpy()
    w = World(
        embeddings=vectors,
        labels=world.labels[real],
        classes=world.classes[real],
        bursts=world.bursts[real],
        frames=world.frames[real],
        night=world.kind[real] == KIND_NIGHT,
        times=world.times[real],
        seed=world.seed,
    )
    rows = clustering_sweep(w)
    best = oracle(rows)
    return {
        "seed": world.seed,
        "recall_at_p95": best["recall"],
        "threshold": best.get("threshold"),
        **{k: round(float(v), 4) for k, v in retrieval(w).items()},
        **{k: round(float(v), 4) for k, v in day_night_gap(w).items()},
    }


def _score(rows: list[dict]) -> float:
    """Early-stopping score: mean recall at P >= 0.95, then the day-vs-night rank-1."""
    return float(np.mean([r["recall_at_p95"] for r in rows])) + 0.1 * float(
        np.mean([r["rank1_day_night"] for r in rows])
    )


def train(
    weights: str,
    train_worlds: list,
    val_worlds: list,
    out: Path,
    minutes: float,
    steps: int | None = None,
    lr: float = 1e-4,
    drift_weight: float = 1e-3,
    deer_per_batch: int = 8,
    views: int = 4,
    eval_every: int = 10,
    projection_steps: int = 600,
    projection_lr: float = 3e-4,
    seed: int = 0,
    log=print,
) -> dict:
    """Fine-tune on cached maps; keep the best state by the validation worlds; return the report.

    Two phases: the projection alone on backbone vectors computed once (``projection_steps``,
    cheap: seconds per hundred steps), then ``layer4[2]`` and the projection together until
    ``minutes`` have passed since the start (or for ``steps``). Both start from the best state
    so far. Writes ``out/best_head.pt`` (rewritten as the validation score improves) and
    ``out/train_report.json`` after every evaluation, so a stopped run leaves a usable model.
    """
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    head = load_head(weights)
    feats = np.concatenate([w.feats for w in train_worlds])
    batches = ViewBatches(train_worlds, deer_per_batch, views, seed)
    history, best, t0 = [], None, time.perf_counter()
    step, losses = 0, []
    settings = {
        "lr": lr,
        "projection_lr": projection_lr,
        "projection_steps": projection_steps,
        "drift_weight": drift_weight,
        "deer_per_batch": deer_per_batch,
        "views": views,
        "eval_every": eval_every,
        "seed": seed,
        "minutes": minutes,
        "steps": steps,
        "train_seeds": [w.seed for w in train_worlds],
        "val_seeds": [w.seed for w in val_worlds],
        "train_deer": sum(len(d) for d in batches.decks),
        "train_views": int(len(feats)),
    }

    def evaluate(phase: str, units=None) -> None:
        nonlocal best
        rows = [
            judge(head, w, None if units is None else u)
            for w, u in zip(val_worlds, units or [None] * len(val_worlds), strict=True)
        ]
        entry = {
            "phase": phase,
            "step": step,
            "minutes": round((time.perf_counter() - t0) / 60, 2),
            "score": round(_score(rows), 4),
            "loss": round(float(np.mean(losses)), 4) if losses else None,
            "val": rows,
        }
        history.append(entry)
        if best is None or entry["score"] > best["score"]:
            best = entry
            state = {k: v.detach().clone() for k, v in head.state_dict().items()}
            torch.save(state, out / "best_head.pt")
        log(
            f"{phase} step {step} ({entry['minutes']} min): loss {entry['loss']}, val "
            + ", ".join(
                f"{r['seed']}: R@P95 {r['recall_at_p95']:.3f} dn-rank1 {r['rank1_day_night']:.3f}"
                f" own-dn {r['own_day_night']:.3f} vs look {r['lookalike']:.3f}"
                for r in rows
            )
            + f" (best: {best['phase']} step {best['step']})"
        )
        report = {"history": history, "best": best, "settings": settings}
        (out / "train_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        losses.clear()

    def restore_best() -> None:
        state = torch.load(out / "best_head.pt", weights_only=True)
        head.load_state_dict(state)

    # phase 1: the projection on fixed backbone vectors
    units = [pool_maps(head, w.feats[w.real()]) for w in val_worlds]
    train_units = pool_maps(head, feats)
    evaluate("start", units)
    opt = torch.optim.AdamW([head.weight], lr=projection_lr, weight_decay=0.0)
    for step in range(1, projection_steps + 1):
        idx, lab = batches.batch()
        terms = projection_step(head, opt, train_units[idx], torch.from_numpy(lab), drift_weight)
        losses.append(terms["triplet"])
        if step % 50 == 0 or step == projection_steps:
            evaluate("projection", units)
    restore_best()
    # phase 2: layer4[2] and the projection together, on the clock
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    step = 0
    while True:
        if steps is not None and step >= steps:
            break
        if steps is None and time.perf_counter() - t0 > minutes * 60:
            break
        idx, lab = batches.batch()
        maps = torch.from_numpy(feats[idx].astype(np.float32))
        terms = train_step(head, opt, maps, torch.from_numpy(lab), drift_weight)
        losses.append(terms["triplet"])
        step += 1
        if step % eval_every == 0:
            evaluate("layer4")
    if step and history[-1]["step"] != step:
        evaluate("layer4")
    restore_best()
    return {"history": history, "best": best, "settings": settings}


def export(weights: str, head_state: Path, dest: Path) -> int:
    """Write the model file: ``weights`` with ``layer4.2`` and the projection from the head.

    Returns:
        The file's size in bytes.
    """
    from deer_pipeline.vision.projection import projection_state, split_projection

    state = torch.load(weights, map_location="cpu", weights_only=True)
    backbone, _ = split_projection(state, weights)
    head = torch.load(head_state, map_location="cpu", weights_only=True)
    merged = dict(backbone)
    for key, value in head.items():
        if key.startswith("block."):
            name = HEAD_PREFIX + key.removeprefix("block.")
            old = merged[name]
            merged[name] = value.to(old.dtype) if old.is_floating_point() else value
    merged.update(projection_state(head["mean"], head["weight"]))
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(merged, dest)
    return dest.stat().st_size


def prepare(
    work: Path,
    seeds: list[int],
    images: int,
    locations: int,
    weights: str,
    detector: str,
    truth_boxes: list[int],
    log=print,
) -> None:
    """Generate each world (``work/worlds/w<seed>``, when missing) and cache its trunk maps.

    Odd seeds get ``locations`` camera locations, even seeds one more, so herds differ.
    """
    from deer_workshop.synthetic import generate_dataset

    for seed in seeds:
        root = work / "worlds" / f"w{seed}"
        if not (root / "ground_truth.json").exists():  # even seeds: one more location
            extra = 1 if seed % 2 == 0 else 0
            generate_dataset(root, images=images, locations=locations + extra, seed=seed, workers=1)
        boxes = "truth" if seed in truth_boxes else "detector"
        build_features(root, seed, work / "cache", weights, detector, boxes=boxes, log=log)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``prepare``, ``train``, ``export`` or ``run`` (all three)."""
    parser = argparse.ArgumentParser(prog="python -m deer_workshop.reid_training.cpu_finetune")
    parser.add_argument("--work", type=Path, required=True, help="worlds and caches")
    parser.add_argument("--weights", default=str(DEFAULT_REID_WEIGHTS), help="starting model")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("prepare", "train", "run"):
        p = sub.add_parser(name)
        p.add_argument("--train", type=_seeds, required=True, help="training world seeds")
        p.add_argument("--val", type=_seeds, required=True, help="validation world seeds")
        if name != "train":
            p.add_argument("--images", type=int, default=240)
            p.add_argument("--locations", type=int, default=3)
            p.add_argument("--detector", default=str(DEFAULT_DETECTOR_WEIGHTS))
            p.add_argument(
                "--truth-boxes",
                type=_seeds,
                default=[],
                help="worlds cropped at jittered ground-truth boxes instead of detector boxes",
            )
        if name != "prepare":
            p.add_argument("--minutes", type=float, default=25.0)
            p.add_argument("--steps", type=int, default=None)
            p.add_argument("--lr", type=float, default=1e-4)
            p.add_argument("--drift", type=float, default=1e-3, help="L2-SP weight")
            p.add_argument("--deer", type=int, default=8, help="deer per batch")
            p.add_argument("--views", type=int, default=4, help="views per deer")
            p.add_argument("--eval-every", type=int, default=10)
            p.add_argument("--projection-steps", type=int, default=600)
            p.add_argument("--projection-lr", type=float, default=3e-4)
            p.add_argument("--out", type=Path, required=True, help="the new model file")
    x = sub.add_parser("export")
    x.add_argument("head", type=Path)
    x.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    if args.cmd == "export":
        print(f"wrote {args.out} ({export(args.weights, args.head, args.out)} bytes)")
        return 0
    if args.cmd in ("prepare", "run"):
        prepare(
            args.work,
            args.train + args.val,
            args.images,
            args.locations,
            args.weights,
            args.detector,
            args.truth_boxes,
            log,
        )
    if args.cmd in ("train", "run"):
        cache = args.work / "cache"
        report = train(
            args.weights,
            [load_features(cache, s) for s in args.train],
            [load_features(cache, s) for s in args.val],
            args.out.parent / (args.out.stem + "_training"),
            args.minutes,
            args.steps,
            args.lr,
            args.drift,
            args.deer,
            args.views,
            args.eval_every,
            args.projection_steps,
            args.projection_lr,
            log=log,
        )
        folder = args.out.parent / (args.out.stem + "_training")
        size = export(args.weights, folder / "best_head.pt", args.out)
        log(
            f"best step {report['best']['step']} (score {report['best']['score']}); wrote "
            f"{args.out} ({size} bytes)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
