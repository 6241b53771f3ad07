"""``deer-pipeline run`` as a new user meets it: no image root set, a demo set appears and runs."""

import os
import subprocess
import sys

import psycopg2


def test_run_generates_demo_images_and_materializes(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "DEER_HOME": str(home)}
    for key in ("DEER_IMAGE_ROOT", "DEER_DATABASE_URL", "DAGSTER_HOME"):
        env.pop(key, None)
    cli = [sys.executable, "-m", "deer_pipeline.cli"]
    try:
        result = subprocess.run(
            [*cli, "run", "--demo-images", "9", "--select", "raw_images"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "generating a synthetic demo set" in result.stdout
        assert "3/3 runs succeeded" in result.stdout
        assert (home / "demo-images" / "ground_truth.json").exists()
        # the run started the embedded server for itself and stopped it when it ended
        status = subprocess.run([*cli, "db", "status"], env=env, capture_output=True, text=True)
        assert status.returncode == 3 and "stopped" in status.stdout, status.stdout
        subprocess.run([*cli, "db", "start"], env=env, capture_output=True, check=True)
        conn = psycopg2.connect(f"postgresql://postgres@/deer?host={home / 'pg'}")
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(DISTINCT location_key) FROM images WHERE status = 'ok'"
            )
            assert cur.fetchone() == (9, 3)
        conn.close()
        again = subprocess.run(
            [*cli, "run", "--select", "raw_images"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert again.returncode == 0 and "generating" not in again.stdout
    finally:
        subprocess.run([*cli, "db", "stop"], env=env, capture_output=True, timeout=120)
