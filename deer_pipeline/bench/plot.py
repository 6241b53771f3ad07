"""A PNG of stage throughput across benchmark runs, from the ``benchmark_runs`` table.

The README shows this picture; ``deer-pipeline bench --plot PATH`` refreshes it. matplotlib's Agg
backend and its bundled DejaVu font are used, so nothing is fetched.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = (
    ("model_only_images_per_s", "model only (detector + embedder)"),
    ("decode_only_images_per_s", "decode only"),
    ("e2e_images_per_s", "end to end (decode, infer, write)"),
)


def fetch_runs(conn) -> list[dict]:
    """Return every benchmark run in time order as dicts of the plotted figures."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, started_at, device, images, e2e_images_per_s, model_only_images_per_s,"
            " (details->>'decode_only_images_per_s')::float FROM benchmark_runs ORDER BY started_at"
        )
        names = (
            "id",
            "started_at",
            "device",
            "images",
            "e2e_images_per_s",
            "model_only_images_per_s",
            "decode_only_images_per_s",
        )
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def plot_throughput(runs: list[dict], path: Path) -> Path:
    """Draw images/s per stage for each run (one line per stage) and save a PNG.

    Args:
        runs: rows from ``fetch_runs``.
        path: where the PNG goes (folders are created).

    Returns:
        The path written.
    """
    if not runs:
        raise ValueError("no benchmark runs to plot")
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    x = list(range(1, len(runs) + 1))
    for key, label in SERIES:
        values = [run.get(key) for run in runs]
        if any(v is not None for v in values):
            ax.plot(
                x, [v if v is not None else float("nan") for v in values], marker="o", label=label
            )
    ax.set_xlabel("benchmark run")
    ax.set_yscale("log")  # decoding runs far faster than the models on a CPU
    ax.set_ylabel("images / s (log scale)")
    devices = sorted({str(run["device"]) for run in runs})
    ax.set_title(f"deer_pipeline throughput per stage ({', '.join(devices)})")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_recorded_runs(url: str, path: Path) -> Path:
    """Draw every run recorded in the database at ``url`` to ``path``; return the path."""
    from deer_pipeline.db.connect import connect

    conn = connect(url)
    try:
        runs = fetch_runs(conn)
    finally:
        conn.close()
    return plot_throughput(runs, path)
