"""Workshop: the CPU fine-tune of the re-ID model (cached trunk maps, layer4[2] + projection).

Small, real pieces on the CPU: the trunk/head split reproduces the whole model, the pseudo-infrared
view follows the renderer's night look, batches mix day, night and pseudo-infrared views of deer
of every class, one training step is deterministic under a seed, and an exported file loads in the
product's embedder with the fine-tuned tail. The calibration keeps the fields other owners fit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.models import resnet50

from deer_pipeline.reid.calibration import Calibration, calibration_path, read_file, write_file
from deer_pipeline.vision.embedder import Embedder, EmbedderConfig
from deer_pipeline.vision.projection import Projection, projection_state
from deer_pipeline.vision.runtime import file_version
from deer_workshop.reid_training import calibrate
from deer_workshop.reid_training.cpu_data import (
    KIND_DAY,
    KIND_NIGHT,
    KIND_PSEUDO_IR,
    FeatureWorld,
    pseudo_infrared,
    split_model,
)
from deer_workshop.reid_training.cpu_finetune import export
from deer_workshop.reid_training.cpu_model import (
    TrainableHead,
    ViewBatches,
    embed_maps,
    soft_batch_hard,
    train_step,
)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = resnet50(weights=None)
    g = torch.Generator().manual_seed(seed)
    weight = torch.eye(2048) + 0.01 * torch.randn(2048, 2048, generator=g)
    model.fc = Projection(0.01 * torch.randn(2048, generator=g), weight)
    return model.eval()


def test_split_model_reproduces_the_whole_model():
    model = _model()
    trunk, head = split_model(model)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(x)
        maps = trunk(x)
        parts = head(maps)
        trainable = TrainableHead(head[0], head[3]).eval()(maps)
    assert maps.shape == (2, 2048, 2, 2)
    assert parts.shape == (2, 2048)
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trainable, whole, rtol=1e-4, atol=1e-5)


def test_pseudo_infrared_is_the_renderers_night_look():
    crops = torch.zeros(2, 3, 16, 16)
    crops[0] = 100.0  # a flat grey patch: luma 100
    crops[1, 0] = 200.0  # pure red: luma 59.8 -> 59 after PIL's floor
    out = pseudo_infrared(crops, torch.Generator().manual_seed(0))
    assert out.shape == crops.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert out.min() >= 0 and out.max() <= 255
    # v * 1.35 * gain + 12, gain in 0.45..1.2, frame factor 0.85..1.1, noise of 4-9 levels
    low, high = (100 * 1.35 * 0.45 + 12) * 0.85, (100 * 1.35 * 1.2 + 12) * 1.1
    assert low - 10 < float(out[0].mean()) < high + 10
    again = pseudo_infrared(crops, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def _feature_world(seed: int = 3, deer: int = 6) -> FeatureWorld:
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(deer):
        for b in range(4):
            kind = KIND_NIGHT if b >= 2 else KIND_DAY
            rows.append((f"s{seed}/D{d}", ("doe", "buck", "fawn")[d % 3], f"b{d}-{b}", kind))
            if kind == KIND_DAY:
                rows.append((f"s{seed}/D{d}", ("doe", "buck", "fawn")[d % 3], f"b{d}-{b}", 2))
    n = len(rows)
    return FeatureWorld(
        feats=rng.normal(size=(n, 2048, 2, 2)).astype(np.float16),
        labels=np.array([r[0] for r in rows]),
        classes=np.array([r[1] for r in rows]),
        bursts=np.array([r[2] for r in rows]),
        frames=np.array([f"{r[2]}-{i}" for i, r in enumerate(rows)]),
        kind=np.array([r[3] for r in rows], np.int8),
        source=np.arange(n),
        times=np.arange(n, dtype=np.float64),
        seed=seed,
    )


def test_batches_mix_classes_and_conditions():
    world = _feature_world()
    idx, lab = ViewBatches([world], deer_per_batch=4, views=6, seed=0).batch()
    assert len(idx) == 24 and sorted(set(lab.tolist())) == [0, 1, 2, 3]
    assert len(set(world.classes[idx].tolist())) >= 2
    for j in range(4):
        kinds = set(world.kind[idx[lab == j]].tolist())
        assert kinds == {KIND_DAY, KIND_NIGHT, KIND_PSEUDO_IR}
        assert len(set(world.labels[idx[lab == j]].tolist())) == 1


def _step(seed: int) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    _, tail = split_model(_model())
    head = TrainableHead(tail[0], tail[3])
    world = _feature_world()
    idx, lab = ViewBatches([world], 4, 6, seed).batch()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.0)
    terms = train_step(
        head,
        opt,
        torch.from_numpy(world.feats[idx].astype(np.float32)),
        torch.from_numpy(lab),
        1e-3,
    )
    return terms, {k: v.detach().clone() for k, v in head.state_dict().items()}


def test_training_step_is_deterministic_under_a_seed():
    terms_a, state_a = _step(5)
    terms_b, state_b = _step(5)
    assert terms_a == terms_b
    assert np.isfinite(terms_a["loss"]) and terms_a["triplet"] > 0
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    _, tail = split_model(_model())
    start = TrainableHead(tail[0], tail[3]).state_dict()
    assert not torch.equal(state_a["weight"], start["weight"])  # the step moved the projection
    assert torch.equal(state_a["block.bn1.running_mean"], start["block.bn1.running_mean"])


def test_soft_batch_hard_prefers_tight_deer():
    labels = torch.tensor([0, 0, 1, 1])
    tight = torch.nn.functional.normalize(
        torch.tensor([[1, 0.01], [1, 0], [0, 1], [0.01, 1]]), dim=1
    )
    loose = torch.nn.functional.normalize(
        torch.tensor([[1, 0.0], [0, 1], [1, 0.1], [0.1, 1]]), dim=1
    )
    assert float(soft_batch_hard(tight, labels)) < float(soft_batch_hard(loose, labels))


def test_export_loads_in_the_product_with_the_fine_tuned_tail(tmp_path):
    model = _model()
    base = tmp_path / "base.pt"
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    state.update(projection_state(model.fc.mean, model.fc.weight, half=False))
    torch.save(state, base)
    _, tail = split_model(model)
    head = TrainableHead(tail[0], tail[3])
    with torch.no_grad():
        head.weight.add_(0.05 * torch.randn_like(head.weight))
        head.block.conv3.weight.mul_(1.5)
    torch.save(head.state_dict(), tmp_path / "head.pt")
    out = tmp_path / "tuned.pt"
    export(str(base), tmp_path / "head.pt", out)
    embedder = Embedder(EmbedderConfig(weights=str(out), device="cpu"))
    assert embedder.model_version != Embedder(EmbedderConfig(str(base), "cpu")).model_version
    trunk, _ = split_model(embedder.model)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        maps = trunk(x)
        got = embedder.model(x)
        want = head.eval()(maps).numpy()
    assert got.shape == (3, 2048)
    cos = (got.numpy() * want).sum(1)
    assert cos.min() > 0.9999  # the file holds fp16 weights
    assert embed_maps(head, maps.numpy().astype(np.float16)).shape == (3, 2048)


def test_calibration_write_keeps_other_owners_fields(tmp_path):
    weights = tmp_path / "m.pt"
    weights.write_bytes(b"weights")
    version = file_version(weights)
    write_file(
        calibration_path(weights),
        Calibration(
            model_version=version,
            match_threshold=0.62,
            thresholds={"review_floor": 0.7},
            pair_model={"weights": [1.0]},
            fitted={"pairs": "their note"},
        ),
    )
    result = {"threshold": 0.48, "pooled": {}, "worlds": {}}
    calibrate.write(weights, result, {"calibration_seeds": "1-3"})
    got = read_file(calibration_path(weights), version)
    assert got.match_threshold == 0.48
    assert got.pair_model == {"weights": [1.0]}
    assert got.thresholds == {"review_floor": 0.7}
    assert got.fitted["pairs"] == "their note"
    assert got.fitted["match_threshold"]["calibration_seeds"] == "1-3"
    json.loads(calibration_path(weights).read_text())


@pytest.mark.parametrize("target", [0.95])
def test_pooled_choice_is_the_best_recall_at_precision(target):
    sweeps = {
        "a": [
            {"threshold": 0.4, "precision": 0.90, "recall": 0.9},
            {"threshold": 0.5, "precision": 0.97, "recall": 0.8},
            {"threshold": 0.6, "precision": 0.99, "recall": 0.6},
        ],
        "b": [
            {"threshold": 0.4, "precision": 0.99, "recall": 0.95},
            {"threshold": 0.5, "precision": 0.99, "recall": 0.9},
            {"threshold": 0.6, "precision": 1.0, "recall": 0.7},
        ],
    }
    rows = calibrate.pooled(sweeps, {"a": 100, "b": 300})
    assert rows[0]["precision"] == pytest.approx(0.9675)
    assert calibrate._best(rows, target)["threshold"] == 0.4
    assert calibrate._best(sweeps["a"], target)["threshold"] == 0.5


def test_projection_phase_moves_only_the_projection():
    from deer_workshop.reid_training.cpu_model import pool_maps, projection_step

    _, tail = split_model(_model())
    head = TrainableHead(tail[0], tail[3])
    world = _feature_world()
    units = pool_maps(head, world.feats)
    assert units.shape == (len(world), 2048)
    torch.testing.assert_close(units.norm(dim=1), torch.ones(len(world)))
    with torch.no_grad():  # pool then project is the whole head
        whole = head.eval()(torch.from_numpy(world.feats[:3].astype(np.float32)))
    torch.testing.assert_close(head.project(units[:3]), whole, rtol=0, atol=3e-2)
    block_before = head.block.conv3.weight.detach().clone()
    idx, lab = ViewBatches([world], 4, 6, 0).batch()
    opt = torch.optim.AdamW([head.weight], lr=1e-3, weight_decay=0.0)
    terms = projection_step(head, opt, units[idx], torch.from_numpy(lab), 1e-3)
    assert np.isfinite(terms["loss"])
    assert torch.equal(head.block.conv3.weight, block_before)
    assert not torch.equal(head.weight, head.start["weight"])
