"""Calibrate a re-ID model's match threshold by replaying the product's clustering; held-out report.

``fit``: for each calibration world (never used in training; herds of different sizes) a dump of
the database a real ``deer-pipeline run`` filled (``deer_workshop.identity_tuning dump``) is
replayed with the library's own tracklets, time priors, sex votes and cannot-links at every
threshold; the calibrated threshold has the best pooled B-cubed recall at precision >= 0.95 (all
worlds' detections together). Each world's own best threshold and its distance from the
calibrated one are reported, and ``models/<stem>.calibration.json`` is written with
``deer_pipeline.reid.calibration.write_file``: the match threshold and ``fitted``; the other
fields (``thresholds``, ``pair_model``, which their owners fit) are kept when the file was fitted
for the same model version.

``report``: the figures that name the weakness, from such a dump of a fresh world: same-deer
day-vs-night median cosine against the different-deer 99th percentile, day-to-night rank-1.

``pipeline``: run ``deer-pipeline run`` on a world in its own ``DEER_HOME`` and dump it (with
``--mode reembed``, only ``embeddings+`` with other weights over the stored detections), score the
stored identities, then stop the embedded server it started.

    python -m deer_workshop.reid_training.calibrate pipeline WORLD HOME OUT.pkl [--weights W]
    python -m deer_workshop.reid_training.calibrate fit DUMP.pkl ... --weights W [--write]
    python -m deer_workshop.reid_training.calibrate report DUMP.pkl WORLD
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from deer_pipeline.reid.calibration import (
    Calibration,
    calibration_path,
    read_file,
    write_file,
)
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.vision.runtime import file_version

TARGET_PRECISION = 0.95
METHOD = (
    "product clustering (tracklets, time priors, sex votes, cannot-links) replayed on "
    "calibration worlds the model never trained on; the threshold with the best pooled B-cubed "
    "recall at precision >= 0.95"
)
_OLD_FIT_KEYS = ("calibration_seeds", "method", "source")  # the first, offline fit's record
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.20, 0.951, 0.02))


def sweep(data: dict, thresholds=THRESHOLDS) -> list[dict]:
    """Replay one dumped world at each threshold (``identity_tuning.replay``)."""
    from deer_workshop.identity_tuning import replay

    return [{"threshold": t} | replay(data, MatchConfig(threshold=t)) for t in thresholds]


def _best(rows: list[dict], target: float = TARGET_PRECISION) -> dict | None:
    good = [r for r in rows if r["precision"] >= target]
    return max(good, key=lambda r: (r["recall"], -r["threshold"])) if good else None


def pooled(sweeps: dict[str, list[dict]], sizes: dict[str, int]) -> list[dict]:
    """B-cubed over all worlds' detections together (each world weighted by its detections)."""
    total = sum(sizes.values())
    out = []
    for rows in zip(*sweeps.values(), strict=True):
        names = list(sweeps)
        p = sum(r["precision"] * sizes[n] for r, n in zip(rows, names, strict=True)) / total
        r_ = sum(r["recall"] * sizes[n] for r, n in zip(rows, names, strict=True)) / total
        out.append({"threshold": rows[0]["threshold"], "precision": p, "recall": r_})
    return out


def fit(dumps: list[Path], thresholds=THRESHOLDS) -> dict:
    """Sweep every dump; return the calibrated threshold and the per-world figures."""
    sweeps, sizes = {}, {}
    for path in dumps:
        data = pickle.loads(path.read_bytes())
        sweeps[path.stem] = sweep(data, thresholds)
        sizes[path.stem] = len(data["labels"])
    rows = pooled(sweeps, sizes)
    chosen = _best(rows)
    if chosen is None:
        chosen = max(rows, key=lambda r: r["precision"])
    threshold = chosen["threshold"]
    worlds = {}
    for name, world_rows in sweeps.items():
        best = _best(world_rows)
        at = min(world_rows, key=lambda r: abs(r["threshold"] - threshold))
        worlds[name] = {
            "detections": sizes[name],
            "deer_true": at["true"],
            "best_threshold": best["threshold"] if best else None,
            "best_recall": best["recall"] if best else 0.0,
            "distance": round(best["threshold"] - threshold, 2) if best else None,
            "at_calibrated": {k: at[k] for k in ("precision", "recall", "found", "same_frame")},
        }
    return {
        "threshold": threshold,
        "pooled": {k: round(v, 4) for k, v in chosen.items()},
        "worlds": worlds,
    }


def write(weights: Path, result: dict, meta: dict) -> Path:
    """Write the model's calibration file, keeping fields other owners fit for this version."""
    version = file_version(weights)
    path = calibration_path(weights)
    old = read_file(path, version) if path.is_file() else None
    calibration = Calibration(
        model_version=version,
        match_threshold=float(result["threshold"]),
        thresholds=dict(old.thresholds) if old else {},
        pair_model=dict(old.pair_model) if old and old.pair_model is not None else None,
        fitted={
            **{k: v for k, v in (old.fitted if old else {}).items() if k not in _OLD_FIT_KEYS},
            "match_threshold": {"method": METHOD} | result | meta,
        },
    )
    return write_file(path, calibration)


def report(data: dict, truth_file: Path) -> dict:
    """Day-vs-night and look-alike figures of one dumped world (stored vectors of a real run)."""
    from deer_workshop.reid_projection.evaluate import retrieval
    from deer_workshop.reid_projection.worlds import World

    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    night = {e["file"]: bool(e["night"]) for e in truth["images"]}
    rows = []
    for dets in data["locations"].values():
        for d in dets:
            if d.id in data["labels"]:
                path = data["paths"][d.image_id]
                rows.append((d.embedding, data["labels"][d.id], d.burst, d.image_id, night[path]))
    x = np.stack([r[0] for r in rows]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.array([r[1][0] for r in rows])
    cls = np.array([r[1][1] for r in rows])
    bursts = np.array([r[2] for r in rows])
    is_night = np.array([r[4] for r in rows])
    sim = x @ x.T
    same = ids[:, None] == ids[None, :]
    other_burst = bursts[:, None] != bursts[None, :]
    day_night = (~is_night)[:, None] & is_night[None, :]
    upper = np.triu(np.ones_like(same), 1)
    dn = sim[same & other_burst & day_night]
    dd = sim[same & other_burst & (~is_night)[:, None] & (~is_night)[None, :] & upper]
    diff = sim[~same & upper.astype(bool)]
    diff_class = sim[~same & (cls[:, None] == cls[None, :]) & upper.astype(bool)]
    world = World(
        x, ids, cls, bursts, np.array([r[3] for r in rows]), is_night, np.zeros(len(rows)), 0
    )
    ret = retrieval(world)
    return {
        "detections": len(rows),
        "deer": int(len(set(ids.tolist()))),
        "night_share": round(float(is_night.mean()), 3),
        "same_deer_day_night_median": round(float(np.median(dn)), 4) if len(dn) else None,
        "same_deer_day_day_median": round(float(np.median(dd)), 4) if len(dd) else None,
        "different_deer_p99": round(float(np.percentile(diff, 99)), 4),
        "different_deer_same_class_p99": round(float(np.percentile(diff_class, 99)), 4)
        if len(diff_class)
        else None,
        "rank1": round(ret["rank1"], 4),
        "rank1_day_night": round(ret["rank1_day_night"], 4),
        "rank1_day_night_queries": ret["rank1_day_night_queries"],
    }


def _cli(home: Path, world: Path, weights: str | None) -> dict:
    env = dict(os.environ, DEER_HOME=str(home), DEER_IMAGE_ROOT=str(world))
    if weights:
        env["DEER_REID_WEIGHTS"] = str(weights)
    return env


def identities(url: str, world: Path) -> dict:
    """The identities the run stored, scored against the world's truth (``reid.metrics``)."""
    import psycopg2

    from deer_pipeline.reid.metrics import evaluate_database

    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            return evaluate_database(cur, world / "ground_truth.json").as_dict()
    finally:
        conn.close()


def pipeline(world: Path, home: Path, out: Path, weights: str | None, mode: str) -> dict:
    """Run the product on a world (``full``, ``reembed``: ``embeddings+`` only, or ``none``).

    Then dump its detections for the replay, score the stored identities, stop the server.
    """
    from deer_pipeline.config import DEFAULT_REID_WEIGHTS
    from deer_workshop.identity_tuning import dump

    exe = [sys.executable, "-m", "deer_pipeline.cli"]
    env = _cli(home, world, weights)
    home.mkdir(parents=True, exist_ok=True)
    try:
        if mode != "none":
            args = exe + ["run"] + (["--select", "embeddings+"] if mode == "reembed" else [])
            subprocess.run(args, env=env, check=True)
        url = subprocess.run(
            exe + ["db", "url"], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        version = file_version(Path(weights or DEFAULT_REID_WEIGHTS))
        summary = dump(url, world, out, version)
        return summary | {"model_version": version, "identities": identities(url, world)}
    finally:
        subprocess.run(exe + ["db", "stop"], env=env, check=False)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``pipeline``, ``fit`` or ``report``."""
    from deer_pipeline.config import DEFAULT_REID_WEIGHTS

    parser = argparse.ArgumentParser(prog="python -m deer_workshop.reid_training.calibrate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pipeline", help="run the product on a world and dump its detections")
    p.add_argument("world", type=Path)
    p.add_argument("home", type=Path, help="DEER_HOME of this world's database")
    p.add_argument("out", type=Path)
    p.add_argument("--weights", default=None, help="re-ID model file (default the committed)")
    p.add_argument(
        "--mode",
        choices=("full", "reembed", "none"),
        default="full",
        help="full run, embeddings+ only (detections stored), or none (dump what is stored)",
    )
    f = sub.add_parser("fit", help="calibrate the match threshold on dumps of calibration worlds")
    f.add_argument("dumps", type=Path, nargs="+")
    f.add_argument("--weights", type=Path, default=DEFAULT_REID_WEIGHTS)
    f.add_argument("--seeds", default="", help="calibration world seeds, for the record")
    f.add_argument("--write", action="store_true", help="write <weights stem>.calibration.json")
    r = sub.add_parser("report", help="day/night and look-alike figures of a dumped world")
    r.add_argument("dump", type=Path)
    r.add_argument("world", type=Path, help="the world folder (ground_truth.json)")
    args = parser.parse_args(argv)
    if args.cmd == "pipeline":
        print(json.dumps(pipeline(args.world, args.home, args.out, args.weights, args.mode)))
    elif args.cmd == "fit":
        result = fit(args.dumps)
        print(json.dumps(result, indent=1))
        if args.write:
            meta = {"calibration_seeds": args.seeds, "dumps": [p.name for p in args.dumps]}
            print(f"wrote {write(args.weights, result, meta)}")
    else:
        data = pickle.loads(args.dump.read_bytes())
        print(json.dumps(report(data, args.world / "ground_truth.json")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
