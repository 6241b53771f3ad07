"""Offline tuning of identity clustering: dump a world's detections once, then sweep in numpy.

A pipeline run takes minutes per world; the clustering itself takes a second. So this dumps every
detection a run would identify (with embeddings, class evidence and the ground-truth individual
its box matches) from a database the pipeline filled, and replays the library's own tracklet
linking, sex votes and clustering over all locations at once, scoring B-cubed like
``reid.metrics``. Use it on worlds of your own seeds; confirm on fresh seeds through the pipeline.

    python -m deer_workshop.identity_tuning dump DATABASE_URL IMAGE_ROOT OUT.pkl
    python -m deer_workshop.identity_tuning sweep OUT.pkl [OUT2.pkl ...]
    python -m deer_workshop.identity_tuning reproject DATABASE_URL WEIGHTS.pt FROM_VERSION

``reproject`` stores, for every embedding of ``FROM_VERSION`` (a plain backbone's L2-normalised
vectors), what a model file with a projection (``vision/projection.py``) computes from the same
backbone vector, under that file's version: a re-embedding without running the backbone again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from deer_pipeline.reid.cluster import cluster_units
from deer_pipeline.reid.identify import choose_model_version, load_pending
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.metrics import bcubed, load_truth, match_boxes
from deer_pipeline.reid.tracklets import LinkConfig, build_tracklets
from deer_pipeline.reid.units import exact_neighbours, tracklet_unit, visit_priors


def dump(url: str, image_root: Path, out: Path, model_version: str | None = None) -> dict:
    """Write every identifiable detection of the database, with truth, to ``out`` (pickle).

    ``model_version`` picks the embeddings when the database holds several models' (as after
    re-embedding with another model); default: the one covering most detections.
    """
    import psycopg2

    truth = load_truth(image_root / "ground_truth.json")
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM sightings")  # rolled back below: only to read all pending
            cur.execute("SELECT key FROM locations ORDER BY key")
            locations = [r[0] for r in cur.fetchall()]
            by_location = {}
            for loc in locations:
                version = choose_model_version(cur, loc, model_version)
                by_location[loc] = load_pending(cur, loc, version) if version else []
            cur.execute("SELECT id, rel_path FROM images")
            paths = dict(cur.fetchall())
    finally:
        conn.rollback()
        conn.close()
    labels: dict[int, tuple[str, str]] = {}
    for dets in by_location.values():
        per_image = defaultdict(list)
        for d in dets:
            per_image[d.image_id].append(d)
        for image_id, items in per_image.items():
            boxes = truth.get(paths[image_id], [])
            for i, j in match_boxes([d.box for d in items], [b["bbox"] for b in boxes]):
                labels[items[i].id] = (boxes[j]["individual_id"], boxes[j]["class"])
    data = {"locations": by_location, "labels": labels, "paths": paths}
    out.write_bytes(pickle.dumps(data))
    return {"detections": sum(map(len, by_location.values())), "labelled": len(labels)}


def reproject(url: str, weights: Path, from_version: str) -> dict:
    """Store projected copies of ``from_version``'s embeddings under ``weights``' version."""
    import psycopg2
    import torch

    from deer_pipeline.db.columns import copy_columns
    from deer_pipeline.db.copy import copy_rows
    from deer_pipeline.db.indexes import register_model_version
    from deer_pipeline.reid.vectors import normalise_rows, read_id_halfvecs
    from deer_pipeline.vision.projection import split_projection
    from deer_pipeline.vision.runtime import file_version

    _, projection = split_projection(torch.load(weights, map_location="cpu"), str(weights))
    version = file_version(weights)
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            ids, vectors = read_id_halfvecs(  # those the new model has not embedded yet
                cur,
                "SELECT detection_id, embedding FROM embeddings e WHERE model_version = %s"
                " AND NOT EXISTS (SELECT 1 FROM embeddings n WHERE n.model_version = %s"
                " AND n.detection_id = e.detection_id)",
                (from_version, version),
            )
            with torch.no_grad():
                out = projection(torch.from_numpy(normalise_rows(vectors))).numpy()
            register_model_version(cur, version, out.shape[1])  # its size and HNSW indexes
            copy_rows(
                cur,
                "embeddings",
                copy_columns("embeddings"),
                {"detection_id": ids, "model_version": [version] * len(ids), "embedding": out},
            )
        conn.commit()
    finally:
        conn.close()
    return {"version": version, "embeddings": len(ids)}


def replay(data: dict, match: MatchConfig) -> dict:
    """Cluster a dumped world's tracklets of every location at once; score against truth."""
    link = replace(LinkConfig(), sex_margin=match.sex_margin)
    tracklets, priors = [], {}
    for dets in data["locations"].values():
        local = build_tracklets(dets, link)
        for (i, j), b in visit_priors(local, match).items():
            priors[(i + len(tracklets), j + len(tracklets))] = b
        tracklets += local
    units = [tracklet_unit(t) for t in tracklets]
    edges = exact_neighbours(tracklets, match.candidates)
    result = cluster_units(
        units, sorted(edges | set(priors)), match.threshold, match.sex_margin, priors
    )
    labels = data["labels"]
    pred, true = [], []
    same_frame = 0
    for c, members in enumerate(result.clusters):
        images = Counter(m.image_id for i in members for m in tracklets[i].members)
        same_frame += sum(n - 1 for n in images.values() if n > 1)
        for i in members:
            for m in tracklets[i].members:
                if m.id in labels:
                    pred.append(c)
                    true.append(labels[m.id][0])
    p, r = bcubed(pred, true)
    found = len({pred[k] for k in range(len(pred))})
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "found": found,
        "true": len(set(true)),
        "tracklets": len(tracklets),
        "same_frame": same_frame,
        "refused": result.refused,
    }


def sex_margins(data: dict, link: LinkConfig | None = None) -> list[dict]:
    """Per-tracklet vote margins against the true class: how often a margin's verdict is wrong."""
    rows = []
    for dets in data["locations"].values():
        for t in build_tracklets(dets, replace(link or LinkConfig(), sex_margin=2.0)):
            truths = Counter(data["labels"][m.id][1] for m in t.members if m.id in data["labels"])
            if not truths:
                continue
            winner, lead = t.vote.leader()
            rows.append({"lead": lead, "right": winner == truths.most_common(1)[0][0]})
    out = []
    for margin in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        confident = [r for r in rows if r["lead"] >= margin]
        wrong = sum(not r["right"] for r in confident)
        out.append({"margin": margin, "confident": len(confident), "of": len(rows), "wrong": wrong})
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``dump`` and ``sweep``."""
    parser = argparse.ArgumentParser(prog="python -m deer_workshop.identity_tuning")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("url")
    d.add_argument("root", type=Path)
    d.add_argument("out", type=Path)
    r = sub.add_parser("reproject")
    r.add_argument("url")
    r.add_argument("weights", type=Path)
    r.add_argument("from_version")
    s = sub.add_parser("sweep")
    s.add_argument("dumps", type=Path, nargs="+")
    s.add_argument("--thresholds", default="0.6,0.65,0.7,0.75,0.8")
    s.add_argument("--bonus", default="0,0.03,0.06")
    s.add_argument("--margins", default="0.5")
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        print(json.dumps(dump(args.url, args.root, args.out)))
        return 0
    if args.cmd == "reproject":
        print(json.dumps(reproject(args.url, args.weights, args.from_version)))
        return 0
    worlds = {p.name: pickle.loads(p.read_bytes()) for p in args.dumps}
    for name, data in worlds.items():
        print(json.dumps({"world": name, "sex": sex_margins(data)}))
    grid = itertools.product(
        map(float, args.thresholds.split(",")),
        map(float, args.bonus.split(",")),
        map(float, args.margins.split(",")),
    )
    for threshold, bonus, margin in grid:
        match = MatchConfig(threshold=threshold, visit_bonus=bonus, sex_margin=margin)
        for name, data in worlds.items():
            row = {"world": name, "threshold": threshold, "bonus": bonus, "margin": margin}
            print(json.dumps(row | replay(data, match)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
