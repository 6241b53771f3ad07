"""Load figures of the review app: 10,000 deer and 50,000 sightings of synthetic vectors.

Not a test (timings are machine-dependent): it fills the data database of ``$DEER_HOME`` (use a
scratch folder: the data tables are emptied first) with animals split into fragments (several
deer per animal, as the automatic identities leave them), starts a real ``deer-pipeline review``
and times, through HTTP with keep-alive: the first page answered after the start, the first
proposal (once the ranking is built in the background), the queue page, the list page (plain and
filtered), the deer page, and "the next proposal after a key" (POST /decisions answered from the
page's own form, then the redirected GET of the next proposal). Prints one JSON line of
milliseconds, with the machine's load average (the figures are only comparable on an idle one).

    DEER_HOME=/tmp/review-load python scripts/review_load.py [--deer 10000] [--sightings 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta

import numpy as np
import requests

from deer_pipeline.db.columns import copy_columns
from deer_pipeline.db.connect import connect, ensure_ready
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.db.indexes import index_sql

DIM = 2048
SEXES = ("doe", "buck", "fawn")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fill(conn, n_deer: int, n_sightings: int, seed: int = 0) -> None:
    """Write locations, images, detections, embeddings, deer and sightings (binary COPY)."""
    rng = np.random.default_rng(seed)
    per = n_sightings // n_deer
    animals = n_deer // 4
    animal_of = np.arange(n_deer) // 4
    sex_of = rng.integers(0, 3, size=animals)
    t0 = datetime(2024, 1, 1)
    with conn.cursor() as cur:
        cur.execute(
            "TRUNCATE deer_not_same, review_log, sightings, deer, embeddings,"
            " detection_corrections, detections, images, locations RESTART IDENTITY CASCADE"
        )
        # The embeddings HNSW index is not read by review; building it for 50,000 rows on two
        # cores takes minutes, so the load database goes without it (only the version's gallery
        # index is made, after the deer are loaded).
        for k in range(5):
            cur.execute("INSERT INTO locations (key, folder) VALUES (%s, %s)", (f"L{k}", f"L{k}"))
        base = _unit(rng.normal(size=(animals, DIM)))
        ids = np.arange(1, n_sightings + 1)
        deer_ids = (ids - 1) // per + 1
        when = [t0 + timedelta(minutes=int(m)) for m in rng.integers(0, 525_600, n_sightings)]
        loc = [f"L{int(a) % 5}" for a in animal_of[deer_ids - 1]]
        copy_rows(
            cur,
            "images",
            copy_columns(
                "images",
                ["id", "location_key", "rel_path", "captured_at", "status", "width", "height"],
            ),
            {
                "id": ids,
                "location_key": loc,
                "rel_path": [f"{lc}/IMG_{i:06d}.JPG" for lc, i in zip(loc, ids, strict=True)],
                "captured_at": when,
                "status": ["ok"] * n_sightings,
                "width": np.full(n_sightings, 1920),
                "height": np.full(n_sightings, 1080),
            },
        )
        cls = [SEXES[int(sex_of[animal_of[d - 1]])] for d in deer_ids]
        conf = rng.uniform(0.3, 0.99, n_sightings)
        scores = [
            (
                {
                    c: round(float(conf[i]) if c == cls[i] else float(rng.uniform(0, 0.5)), 3)
                    for c in SEXES
                }
            )
            for i in range(n_sightings)
        ]
        copy_rows(
            cur,
            "detections",
            copy_columns(
                "detections",
                [
                    "id",
                    "image_id",
                    "model_version",
                    "det_index",
                    "class_name",
                    "confidence",
                    "x1",
                    "y1",
                    "x2",
                    "y2",
                    "class_scores",
                ],
            ),
            {
                "id": ids,
                "image_id": ids,
                "model_version": ["load"] * n_sightings,
                "det_index": np.zeros(n_sightings, dtype=np.int32),
                "class_name": cls,
                "confidence": conf,
                "x1": np.full(n_sightings, 100.0),
                "y1": np.full(n_sightings, 100.0),
                "x2": np.full(n_sightings, 400.0),
                "y2": np.full(n_sightings, 300.0),
                "class_scores": scores,
            },
        )
        gallery = np.zeros((n_deer, DIM), dtype=np.float32)
        for start in range(0, n_deer, 1000):
            chunk = np.arange(start, min(n_deer, start + 1000))
            fragment = _unit(
                base[animal_of[chunk]] + 0.6 * _unit(rng.normal(size=(len(chunk), DIM)))
            )
            det = np.repeat(fragment, per, axis=0)
            det = _unit(det + 0.5 * _unit(rng.normal(size=det.shape)))
            det_ids = np.arange(start * per + 1, (chunk[-1] + 1) * per + 1)
            copy_rows(
                cur,
                "embeddings",
                copy_columns("embeddings", ["detection_id", "model_version", "embedding"]),
                {
                    "detection_id": det_ids,
                    "model_version": ["load-emb"] * len(det_ids),
                    "embedding": det,
                },
            )
            gallery[chunk] = det.reshape(len(chunk), per, DIM).sum(axis=1)
        firsts = {}
        for d, w in zip(deer_ids, when, strict=True):
            lo, hi = firsts.get(d, (w, w))
            firsts[d] = (min(lo, w), max(hi, w))
        did = np.arange(1, n_deer + 1)
        copy_rows(
            cur,
            "deer",
            copy_columns(
                "deer",
                [
                    "id",
                    "sex",
                    "model_version",
                    "embedding_sum",
                    "embedding_count",
                    "embedding",
                    "n_sightings",
                    "first_seen",
                    "last_seen",
                ],
            ),
            {
                "id": did,
                "sex": [SEXES[int(sex_of[animal_of[d - 1]])] for d in did],
                "model_version": ["load-emb"] * n_deer,
                "embedding_sum": gallery,
                "embedding_count": np.full(n_deer, per),
                "embedding": _unit(gallery),
                "n_sightings": np.full(n_deer, per),
                "first_seen": [firsts[d][0] for d in did],
                "last_seen": [firsts[d][1] for d in did],
            },
        )
        cur.execute(
            "INSERT INTO embedding_models (model_version, dimensions) VALUES ('load-emb', %s)"
            " ON CONFLICT DO NOTHING",
            (DIM,),
        )
        cur.execute(index_sql("deer", "load-emb", DIM))  # the gallery index review reads
        copy_rows(
            cur,
            "sightings",
            copy_columns("sightings", ["detection_id", "deer_id", "method"]),
            {"detection_id": ids, "deer_id": deer_ids, "method": ["match"] * n_sightings},
        )
        for table in ("images", "detections", "deer"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM"
                f" {table}))"
            )
        cur.execute("ANALYZE")
    conn.commit()


def _ms(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "median": round(statistics.median(ordered) * 1000, 1),
        "p95": round(ordered[max(0, int(0.95 * len(ordered)) - 1)] * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
    }


def _timed(session, method, url, **kw) -> tuple[float, requests.Response]:
    start = time.perf_counter()
    response = session.request(method, url, **kw)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response


def measure(url: str, rounds: int) -> dict:
    """Time every page and the decision-to-next-proposal loop."""
    s = requests.Session()
    out = {}
    for name, path in (
        ("queue_page", "/"),
        ("list_page", "/deer"),
        ("list_filtered", "/deer?location=L2&sex=doe&min=3&from=2024-03-01&to=2024-09-30"),
        ("deer_page", "/deer/{id}"),
    ):
        times = []
        for k in range(rounds):
            times.append(_timed(s, "GET", url + path.format(id=1 + 37 * k))[0])
        out[name] = _ms(times)
        print(name, out[name], flush=True)
    times, answers = [], []
    page = s.get(url + "/").text
    for k in range(rounds):
        wanted = ["merge" if k % 2 == 0 else "not_same", "not_same", "keep", "class-doe"]
        answer = next(a for a in wanted if f'<form id="{a}"' in page)
        block = re.search(rf'<form id="{answer}".*?</form>', page, re.S).group(0)
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', block))
        elapsed, response = _timed(
            s, "POST", url + "/decisions", data=fields, headers={"Origin": url}
        )
        times.append(elapsed)
        answers.append(answer)
        page = response.text
        assert 'id="proposal"' in page, page[:500]
    out["decision_to_next_proposal"] = _ms(times)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deer", type=int, default=10_000)
    parser.add_argument("--sightings", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the data already loaded")
    args = parser.parse_args()
    if not os.environ.get("DEER_HOME"):
        parser.error("set DEER_HOME to a scratch folder: the data tables are emptied")
    urls = ensure_ready()
    conn = connect(urls.data)
    t = time.perf_counter()
    if not args.reuse:
        fill(conn, args.deer, args.sightings)
    fill_s = time.perf_counter() - t
    conn.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deer_pipeline.cli", "review", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the review app exited with status {proc.returncode}")
        try:
            requests.get(url + "/", timeout=5)
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    startup_s = time.perf_counter() - t
    while 'id="proposal"' not in requests.get(url + "/", timeout=60).text:
        time.sleep(0.2)
    ranked_s = time.perf_counter() - t
    try:
        figures = measure(url, args.rounds)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    print(line.strip())
    print(
        json.dumps(
            {
                "deer": args.deer,
                "sightings": args.sightings,
                "fill_s": round(fill_s, 1),
                "first_page_s": round(startup_s, 1),
                "first_proposal_s": round(ranked_s, 1),
                "load_average": [round(v, 2) for v in os.getloadavg()],
                "ms": figures,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
