"""The sensor under a running daemon, as a user meets it: drop a folder of photos, get a run.

Copies synthetic photos into a new location folder while ``deer-pipeline dev`` runs (webserver and
daemon, sensor on by default) and expects the new partition and a successful pipeline run within
60 s. One file arrives in two halves a few seconds apart (a card still being copied): it must be
ingested whole, never half-written.
"""

from __future__ import annotations

import hashlib
import shutil
import time

import psycopg2
import requests

from deer_pipeline.ingest.locations import location_key

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status } } }
}
"""
DEADLINE_S = 60


def _runs(url: str, key: str | None) -> list[dict]:
    tags = [{"key": "dagster/partition", "value": key}] if key else []
    response = requests.post(
        f"{url}/graphql",
        json={"query": RUNS_QUERY, "variables": {"filter": {"tags": tags}}},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["data"]["runsOrError"]["results"]


def _wait_initial_runs(url: str, locations: int, timeout_s: float = 300) -> None:
    """Let the runs the sensor starts for the existing folders finish (an idle system)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = _runs(url, None)
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        if len(done) >= locations and len(done) == len(runs):
            assert {r["status"] for r in done} == {"SUCCESS"}, runs
            return
        time.sleep(2)
    raise AssertionError(f"initial runs did not finish: {_runs(url, None)}")


def test_new_folder_becomes_partition_and_successful_run(dev_server, ui_image_root, tmp_path):
    from deer_pipeline.ingest.locations import discover_locations
    from deer_workshop.synthetic import generate_dataset

    _wait_initial_runs(dev_server.url, len(discover_locations(ui_image_root)))
    generate_dataset(
        tmp_path / "src", images=8, locations=1, seed=77, width=640, height=360, workers=1
    )
    files = sorted((tmp_path / "src").rglob("*.JPG"))
    target = ui_image_root / "New Camera"
    key = location_key("New Camera")
    slow, slow_bytes = files[-1], files[-1].read_bytes()

    start = time.monotonic()
    target.mkdir()
    for path in files[:-1]:
        shutil.copyfile(path, target / path.name)
    with open(target / slow.name, "wb") as handle:
        handle.write(slow_bytes[: len(slow_bytes) // 2])
        handle.flush()
        time.sleep(6)  # the rest of the card is still being copied
        handle.write(slow_bytes[len(slow_bytes) // 2 :])

    status = None
    while time.monotonic() - start < DEADLINE_S:
        runs = _runs(dev_server.url, key)
        statuses = {run["status"] for run in runs}
        if "FAILURE" in statuses:
            raise AssertionError(dev_server.log_path.read_text()[-4000:])
        if "SUCCESS" in statuses:
            status = "SUCCESS"
            break
        time.sleep(1)
    elapsed = time.monotonic() - start
    assert status == "SUCCESS", f"no successful run for {key} after {elapsed:.0f} s"
    print(f"new folder to successful run: {elapsed:.1f} s")

    conn = psycopg2.connect(f"postgresql://postgres@/deer?host={dev_server.home / 'pg'}")
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT rel_path, status, sha256, bytes FROM images WHERE location_key = %s", (key,)
        )
        rows = {r[0]: r[1:] for r in cur.fetchall()}
    conn.close()
    assert len(rows) == len(files)
    assert {r[0] for r in rows.values()} == {"ok"}
    whole = rows[f"New Camera/{slow.name}"]
    assert whole[1] == hashlib.sha256(slow_bytes).hexdigest() and whole[2] == len(slow_bytes)
