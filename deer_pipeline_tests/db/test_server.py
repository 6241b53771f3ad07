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
        assert _cli(env, "db", "status").returncode == 0, "db url keeps the server running"
        assert len(urls) == 1 and next(iter(urls)).startswith("postgresql+psycopg2://")
        conn = connect(next(iter(urls)), autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version")
            assert all(count == 1 for _, count in cur.fetchall())
        conn.close()
    finally:
        subprocess.run([*cmd[:-1], "stop"], env=env, check=True, capture_output=True)


def _cli(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "deer_pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_command_that_needed_the_database_for_a_moment_stops_it(tmp_path):
    env = {**os.environ, "DEER_HOME": str(tmp_path / "home")}
    env.pop("DEER_DATABASE_URL", None)
    listed = _cli(env, "deer", "list")
    assert listed.returncode == 0, listed.stderr
    assert _cli(env, "db", "status").returncode == 3, "the server it started is stopped"
    # ... but not under another process still using it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from deer_pipeline.db.connect import ensure_ready; ensure_ready();"
            " print('up', flush=True); sys.stdin.readline()",
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "up"
        assert _cli(env, "deer", "list").returncode == 0
        assert _cli(env, "db", "status").returncode == 0, "still used by the holder"
    finally:
        holder.communicate("\n", timeout=120)
    assert holder.returncode == 0
    assert _cli(env, "db", "status").returncode == 3, "the last user out stopped it"
