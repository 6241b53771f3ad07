"""Re-ID training pieces, and a tiny end-to-end CPU run (a few steps on small images)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from deer_workshop.reid_training.train import main
from deer_workshop.reid_training.train_data import PKSampler, augment
from deer_workshop.reid_training.train_eval import EvalSet, cluster, clustering_sweep, retrieval
from deer_workshop.reid_training.train_model import CosFace, batch_hard_triplet
from deer_workshop.reid_training.weights import join_parts, write_parts


def test_losses():
    emb = torch.nn.functional.normalize(torch.eye(4, 8) + 0.01, dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    together = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 0.01], [0, 1], [0.01, 1]]))
    assert batch_hard_triplet(together, labels, 0.3).item() == 0.0
    assert batch_hard_triplet(emb, labels, 0.3).item() > 0.3
    logits = CosFace(3, dim=8)(emb, torch.tensor([0, 1, 2, 0]))
    assert logits.shape == (4, 3)


def test_pk_sampler_and_augment():
    labels = np.repeat(np.arange(6), [5, 5, 3, 1, 4, 2])
    batch = PKSampler(labels, 3, 4, seed=1).batch()
    assert len(batch) == 12 and 3 not in labels[batch]  # a single-crop id cannot be a positive
    assert all((labels[batch] == v).sum() == 4 for v in set(labels[batch]))
    x = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    out = augment(x, 32, gen)
    assert out.shape == (6, 3, 32, 32) and out.min() >= 0 and out.max() <= 255


def _toy_eval() -> EvalSet:
    rng = np.random.default_rng(0)
    ids = np.repeat(["a", "b", "c", "d"], 6)
    base = {i: rng.normal(size=16) for i in "abcd"}
    emb = np.stack([base[i] + 0.2 * rng.normal(size=16) for i in ids])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    bursts = np.array([f"{i}{k // 3}" for i, k in zip(ids, np.tile(np.arange(6), 4), strict=True)])
    classes = np.array(["doe", "doe", "buck", "fawn"]).repeat(6)
    return EvalSet(emb.astype(np.float32), ids, classes, bursts, np.arange(24.0))


def test_offline_clustering_and_retrieval():
    data = _toy_eval()
    assert retrieval(data)["rank1"] == 1.0
    pred = cluster(data, 0.7)
    assert len(set(pred.tolist())) == 4
    sweep = clustering_sweep(data)
    assert sweep["chosen"]["precision"] == 1.0 and sweep["chosen"]["recall"] == 1.0
    lumped = cluster(data, -1.0)  # everything similar enough: still never across classes
    assert len(set(lumped[data.classes == "buck"]) & set(lumped[data.classes == "doe"])) == 0


def test_parts_round_trip(tmp_path):
    data = bytes(range(256)) * 100
    manifest = write_parts(data, tmp_path / "out", part_bytes=7000)
    assert len(manifest["parts"]) == 4
    (tmp_path / "out" / "deer_reid_resnet50.json").write_text(
        json.dumps({"match_threshold": 0.8, "weights": manifest})
    )
    dest = join_parts(tmp_path / "out", tmp_path / "models" / "w.pt")
    assert dest.read_bytes() == data
    assert json.loads((tmp_path / "models" / "w.json").read_text())["match_threshold"] == 0.8
    (tmp_path / "out" / manifest["parts"][1]).write_bytes(b"x")
    with pytest.raises(ValueError):
        join_parts(tmp_path / "out", tmp_path / "models" / "w.pt")


def test_tiny_cpu_run_writes_weights_the_embedder_loads(tmp_path):
    """A few steps on small images, in a process where Dagster, psycopg2 and ultralytics cannot
    be imported (as on the bare GPU box), then the parts are joined and loaded by the embedder."""
    out = tmp_path / "out"
    args = [
        "run",
        "--out",
        str(out),
        "--work",
        str(tmp_path / "work"),
        "--device",
        "cpu",
        "--workers",
        "1",
        "--train-worlds",
        "1",
        "--train-images",
        "16",
        "--locations",
        "1",
        "--eval-images",
        "12",
        "--eval-locations",
        "1",
        "--width",
        "160",
        "--height",
        "96",
        "--input-size",
        "32",
        "--steps",
        "1",
        "--batch-p",
        "2",
        "--batch-k",
        "2",
    ]
    code = (
        "import sys\nfor m in ('dagster', 'psycopg2', 'ultralytics'): sys.modules[m] = None\n"
        "from deer_workshop.reid_training.train import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    subprocess.run([sys.executable, "-c", code, *args], check=True)
    meta = json.loads((out / "deer_reid_resnet50.json").read_text())
    assert meta["training"]["steps"] == 1 and 0 < meta["match_threshold"] < 1
    assert {"rank1", "mAP"} <= set(meta["heldout"]["retrieval"])
    assert main(["join", str(out), str(tmp_path / "models" / "deer_reid_resnet50.pt")]) == 0
    from deer_pipeline.vision.embedder import Embedder, EmbedderConfig

    weights = str(tmp_path / "models" / "deer_reid_resnet50.pt")
    embedder = Embedder(EmbedderConfig(weights=weights, device="cpu", input_size=32))
    vec = embedder.embed_inputs(torch.rand(2, 3, 32, 32) * 255)
    assert vec.shape == (2, 2048) and np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-4)
    sizes = [(out / p).stat().st_size for p in meta["weights"]["parts"]]
    assert max(sizes) <= 15 * 1024 * 1024 and 40e6 < sum(sizes) < 55e6
