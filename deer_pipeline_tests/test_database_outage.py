"""The embedded server stopped while ``deer-pipeline run`` works: one line, exit 2, nothing lost;
the re-run finishes with exactly one row per image and per detection (real processes, a real
server stopped from the test)."""

import os
import re
import subprocess
import sys
import time

import psycopg2
import pytest

CLI = [sys.executable, "-m", "deer_pipeline.cli"]
IMAGES = 24


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from deer_workshop.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("outage_world")
    generate_dataset(root, images=IMAGES, locations=1, seed=5, width=960, height=540, workers=2)
    return root


def _count(dsn, table):
    try:
        conn = psycopg2.connect(dsn, connect_timeout=3)
    except psycopg2.OperationalError:
        return 0
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return cur.fetchone()[0]
    except psycopg2.Error:  # tables not migrated yet
        return 0
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_database_stopped_mid_run_then_rerun(world, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "DEER_HOME": str(home), "DEER_IMAGE_ROOT": str(world)}
    for key in ("DEER_DATABASE_URL", "DAGSTER_HOME", "DEER_DETECTOR_WEIGHTS", "DEER_REID_WEIGHTS"):
        env.pop(key, None)
    config = tmp_path / "run.yaml"
    config.write_text("ops:\n  inference:\n    config:\n      batch_size: 2\n")
    run = [*CLI, "run", "--config", str(config)]
    dsn = f"postgresql://postgres@/deer?host={home / 'pg'}"
    try:
        subprocess.run([*CLI, "db", "url"], env=env, check=True, capture_output=True, timeout=300)
        proc = subprocess.Popen(
            run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 900
        while _count(dsn, "detections") == 0:  # the first batches are committed
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        stopped = subprocess.run([*CLI, "db", "stop"], env=env, capture_output=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 2, out + err
        assert "Traceback" not in out + err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert "the database stopped while location" in lines[0]
        assert "deer-pipeline db start" in lines[0] and "run the same command again" in lines[0]

        again = subprocess.run(run, env=env, capture_output=True, text=True, timeout=1800)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "released run" in again.stdout  # the interrupted run no longer holds its slots
        written = int(re.search(r"detections: .*\bdetections=(\d+)", again.stdout).group(1))
        # the re-run started the server for itself and stopped it at its end: start it to read
        subprocess.run([*CLI, "db", "start"], env=env, check=True, capture_output=True, timeout=300)
        conn = psycopg2.connect(dsn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT rel_path) FROM images WHERE status = 'ok'")
            assert cur.fetchone() == (IMAGES, IMAGES)
            cur.execute("SELECT count(*) FROM images")
            assert cur.fetchone()[0] == IMAGES
            cur.execute(
                "SELECT count(*), count(DISTINCT (image_id, det_index)), count(DISTINCT image_id)"
                " FROM detections"
            )
            rows, distinct, images_with_boxes = cur.fetchone()
            assert rows == distinct == written > 0 and images_with_boxes > 0
            cur.execute(
                "SELECT count(*) FROM (SELECT image_id FROM detections GROUP BY image_id"
                " HAVING max(det_index) + 1 <> count(*)) gaps"
            )
            assert cur.fetchone()[0] == 0  # ranks 0..n-1 in every image: no stale boxes
            cur.execute("SELECT count(*), count(DISTINCT detection_id) FROM embeddings")
            assert cur.fetchone() == (written, written)
        conn.close()
    finally:
        subprocess.run([*CLI, "db", "stop"], env=env, capture_output=True, timeout=120)
