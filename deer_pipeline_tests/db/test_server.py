import os
import subprocess
import sys

from deer_pipeline.db.connect import connect
from deer_pipeline.db.server import ensure_server, server_running, stop_server


def test_server_stops_and_restarts_with_data_intact(db_urls):
    conn = connect(db_urls.data, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS restart_probe (v text)")
        cur.execute("TRUNCATE restart_probe")
        cur.execute("INSERT INTO restart_probe VALUES ('still here')")
    conn.close()
    assert stop_server() is True
    assert not server_running()
    ensure_server()
    assert server_running()
    conn = connect(db_urls.data, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT v FROM restart_probe")
        assert cur.fetchall() == [("still here",)]
        cur.execute("DROP TABLE restart_probe")
    conn.close()


def test_two_processes_starting_at_once_both_succeed(tmp_path):
    env = {**os.environ, "DEER_HOME": str(tmp_path / "home")}
    env.pop("DEER_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "deer_pipeline.cli", "db", "url"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0], outputs
        urls = {out.strip().splitlines()[-1] for out, _ in outputs}
        assert len(urls) == 1 and next(iter(urls)).startswith("postgresql+psycopg2://")
        conn = connect(next(iter(urls)), autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version")
            assert all(count == 1 for _, count in cur.fetchall())
        conn.close()
    finally:
        subprocess.run([*cmd[:-1], "stop"], env=env, check=True, capture_output=True)
