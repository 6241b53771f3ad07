"""Command line of the projection workshop: ``python -m deer_workshop.reid_projection CMD``.

``worlds``: generate and embed synthetic worlds into the cache. ``train``: fit a projection on
some cached worlds. ``evaluate``: calibrate the clustering threshold on some worlds and report
the held-out figures on others, for the plain backbone and for a projection. ``export``: write
the backbone and the projection as one state_dict (the re-ID model file).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np

from deer_pipeline.config import DEFAULT_REID_WEIGHTS

DEFAULT_CACHE = Path("/work/scratch/proj/cache")
SUMMARY = (
    "rank1",
    "rank1_day_night",
    "own_day_night",
    "lookalike",
    "gap",
    "gap_positive",
    "precision",
    "recall",
    "deer_found",
    "deer",
    "oracle_recall_at_p95",
)


def _seeds(text: str) -> list[int]:
    """Parse ``5001-5003,5101`` into a list of seeds."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _parser() -> argparse.ArgumentParser:
    from deer_workshop.reid_projection.train import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m deer_workshop.reid_projection")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="world vectors folder")
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worlds", help="generate synthetic worlds and cache their backbone vectors")
    w.add_argument("seeds", type=_seeds, help="e.g. 5001-5008,5101")
    w.add_argument("--weights", default=str(DEFAULT_REID_WEIGHTS), help="backbone state_dict")
    w.add_argument("--images", type=int, default=1200)
    w.add_argument("--locations", type=int, default=4)
    t = sub.add_parser("train", help="fit a projection on cached worlds")
    t.add_argument("--train", type=_seeds, required=True, help="training world seeds")
    t.add_argument("--out", type=Path, required=True, help="projection .npz (mean, weight)")
    t.add_argument(
        "--method",
        choices=("triplet", "wccn", "wccn+triplet"),
        default="triplet",
        help="triplet: gradient descent from the identity; wccn: closed form; both: WCCN first",
    )
    t.add_argument("--alpha", type=float, default=0.1, help="WCCN shrinkage toward identity")
    for f in fields(TrainConfig):
        t.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    e = sub.add_parser("evaluate", help="calibrate on some worlds, report on others")
    e.add_argument("--calib", type=_seeds, required=True, help="calibration world seeds")
    e.add_argument("--test", type=_seeds, required=True, help="test world seeds")
    e.add_argument("--projection", type=Path, default=None, help=".npz; default: backbone only")
    e.add_argument("--out", type=Path, default=None, help="write the full report (JSON)")
    x = sub.add_parser("export", help="write backbone + projection as one state_dict")
    x.add_argument("projection", type=Path)
    x.add_argument("--backbone", type=Path, default=DEFAULT_REID_WEIGHTS)
    x.add_argument("--out", type=Path, required=True)
    return parser


def _train(args) -> None:
    from deer_workshop.reid_projection.train import TrainConfig, fit_wccn, train_projection
    from deer_workshop.reid_projection.worlds import concat, load_world

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    world = concat([load_world(args.cache, s) for s in args.train])
    if args.method == "triplet":
        result = train_projection(world, config)
    else:
        result = fit_wccn(world, args.alpha)
        if args.method == "wccn+triplet":
            seconds = result["seconds"]
            result = train_projection(world, config, init=result["weight"])
            result["seconds"] += seconds
            result["config"] |= {"method": args.method, "alpha": args.alpha}
        result.setdefault("history", [{}])
    np.savez(args.out, mean=result["mean"], weight=result["weight"])
    meta = {k: v for k, v in result.items() if k not in ("mean", "weight")}
    meta["train_seeds"] = args.train
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    print(json.dumps(meta["history"][-1] | {"seconds": meta["seconds"]}))


def _evaluate(args) -> dict:
    from deer_workshop.reid_projection.evaluate import calibrate, clustering_sweep, evaluate
    from deer_workshop.reid_projection.train import project
    from deer_workshop.reid_projection.worlds import load_world

    proj = np.load(args.projection) if args.projection else None

    def world(seed):
        w = load_world(args.cache, seed)
        if proj is not None:
            w.embeddings = project(w.embeddings, proj["mean"], proj["weight"])
        return w

    sweeps = [clustering_sweep(world(s)) for s in args.calib]
    threshold = calibrate(sweeps)
    tests = [evaluate(world(s), threshold) for s in args.test]
    mean = {k: round(float(np.mean([t[k] for t in tests])), 4) for k in SUMMARY}
    report = {
        "projection": str(args.projection) if args.projection else None,
        "calib_seeds": args.calib,
        "test_seeds": args.test,
        "threshold": threshold,
        "mean": mean,
        "tests": tests,
    }
    print(f"threshold {threshold} (calibrated on {args.calib})")
    for t in tests:
        print(json.dumps({"seed": t["seed"]} | {k: round(float(t[k]), 4) for k in SUMMARY}))
    print(json.dumps({"mean": mean}))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run one sub-command."""
    args = _parser().parse_args(argv)
    if args.cmd == "worlds":
        from deer_workshop.reid_projection.worlds import build_world

        for seed in args.seeds:
            build_world(args.cache, seed, args.weights, args.images, args.locations)
    elif args.cmd == "train":
        _train(args)
    elif args.cmd == "evaluate":
        _evaluate(args)
    elif args.cmd == "export":
        from deer_workshop.reid_projection.model_file import write_model

        p = np.load(args.projection)
        size = write_model(args.backbone, p["mean"], p["weight"], args.out)
        print(f"wrote {args.out} ({size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
