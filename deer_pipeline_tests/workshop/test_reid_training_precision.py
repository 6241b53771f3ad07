"""Re-ID training takes the product's fast path: bf16 autocast on a CPU with bfloat16 units."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deer_pipeline.vision import runtime
from deer_workshop.reid_training.train_data import CropSet
from deer_workshop.reid_training.train_model import train_backbone, training_autocast

CPU = torch.device("cpu")


def test_training_autocast_follows_the_product(monkeypatch):
    assert training_autocast(torch.device("cuda:0")) == torch.bfloat16  # as before
    assert training_autocast(torch.device("cuda:0"), "fp32") is None
    monkeypatch.setattr(runtime, "cpu_bf16_units", lambda: ["avx512_bf16"])
    assert training_autocast(CPU) == torch.bfloat16
    assert training_autocast(CPU, "fp32") is None
    monkeypatch.setattr(runtime, "cpu_bf16_units", lambda: [])
    assert training_autocast(CPU) is None
    assert training_autocast(CPU, "bf16") == torch.bfloat16
    with pytest.raises(runtime.PrecisionError):
        training_autocast(CPU, "int4")


def test_a_training_step_runs_in_the_resolved_precision():
    rng = np.random.default_rng(0)
    n = 16
    crops = CropSet(
        images=torch.from_numpy(rng.integers(0, 255, (n, 3, 40, 40), dtype=np.uint8)),
        labels=np.repeat(np.arange(4), 4),
        classes=np.zeros(n, np.int64),
        bursts=np.arange(n),
        times=np.arange(n, dtype=np.float64),
        identities=[f"w/{i}" for i in range(4)],
    )
    model, stats = train_backbone(
        crops, CPU, 32, seconds=1e9, p=4, k=2, max_steps=2, low_res=None, log=lambda _: None
    )
    want = "bfloat16" if runtime.cpu_bf16_units() else "float32"
    assert stats["precision"] == want and stats["steps"] == 2
    assert all(math.isfinite(float(p.detach().abs().sum())) for p in model.parameters())
