"""The detector training entry point runs end to end on the CPU and never touches the network."""

from __future__ import annotations

import json
import socket

import pytest

from deer_workshop.synthetic import generate_dataset


@pytest.fixture
def no_network(monkeypatch):
    """Fail any DNS lookup or socket connection, and record that it was tried."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    return attempts


def test_tiny_training_run_offline(tmp_path, no_network, monkeypatch):
    from deer_workshop.synthetic import train_detector as td

    monkeypatch.setattr(
        td, "CI_HOLDOUT", {**td.CI_HOLDOUT, "images": 8, "width": 320, "height": 180}
    )
    data = tmp_path / "data"
    generate_dataset(data, images=16, locations=1, seed=3, width=320, height=180, workers=1)
    out = tmp_path / "model.pt"
    metrics = td.train_detector(
        data,
        out,
        epochs=1,
        imgsz=160,
        batch=8,
        device="cpu",
        workers=0,
        val_data=data,
        work_dir=tmp_path / "runs",
    )
    assert out.is_file() and out.stat().st_size < 10 * 1024 * 1024
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["holdout"]["images"] == 16
    assert 0.0 <= saved["holdout"]["map50"] <= 1.0
    assert saved["readme_line"].startswith(td.README_LABEL)
    assert metrics["ci_holdout"]["images"] == 8
    result = td.evaluate_map(out, data, imgsz=160, device="cpu")
    assert result["map50"] == pytest.approx(saved["holdout"]["map50"], abs=1e-6)
    assert no_network == []
