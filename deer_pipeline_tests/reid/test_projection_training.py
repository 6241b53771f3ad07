"""Workshop: the projection trainer pulls one deer's day and night views together.

Small worlds of vectors built so that the identity map fails in a known way: all views share a
large common part, and every night view is shifted along one direction (the same in every world,
like infrared), larger than the gap between two deer. A deer's own day and night views are then
further apart than two deer's mean vectors, as with the backbone. A linear map that removes the
common part and the night direction exists, so training on one world must find something close
to it and carry over to another world's deer.
"""

from __future__ import annotations

import numpy as np

from deer_workshop.reid_projection.evaluate import cut, day_night_gap, merge_history, retrieval
from deer_workshop.reid_projection.train import TrainConfig, batch_hard, project, train_projection
from deer_workshop.reid_projection.worlds import World


def _world(seed: int, deer: int = 24, dim: int = 64) -> World:
    camera = np.random.default_rng(0)  # what every world shares: the cameras and the infrared
    common = camera.normal(size=dim)
    common *= 3 / np.linalg.norm(common)
    night_shift = camera.normal(size=dim)
    night_shift *= 2.5 / np.linalg.norm(night_shift)
    rng = np.random.default_rng(seed)  # this world's deer
    rows, labels, classes, bursts, frames, night = [], [], [], [], [], []
    for d in range(deer):
        own = rng.normal(size=dim)
        own *= 1.0 / np.linalg.norm(own)
        for b in range(6):  # bursts 0-2 by day, 3-5 by night, 2 frames each
            is_night = b >= 3
            for f in range(2):
                v = common + own + (night_shift if is_night else 0) + 0.1 * rng.normal(size=dim)
                rows.append(v / np.linalg.norm(v))
                labels.append(f"s{seed}/{d}")
                classes.append("doe" if d % 2 else "buck")
                bursts.append(f"s{seed}/{d}-{b}")
                frames.append(f"s{seed}/{d}-{b}-{f}")
                night.append(is_night)
    n = len(rows)
    return World(
        np.array(rows, np.float32),
        np.array(labels),
        np.array(classes),
        np.array(bursts),
        np.array(frames),
        np.array(night),
        np.arange(n, dtype=np.float64),
        seed,
    )


def test_training_brings_day_and_night_together():
    train, test = _world(1), _world(2)  # the test world's deer and shift are never trained on
    config = TrainConfig(steps=300, deer_per_batch=8, margin=0.3, reg=0.01, lr=3e-3)
    before, gap_before = retrieval(test), day_night_gap(test)
    # every deer's own day and night means sit further apart than its nearest look-alike
    assert gap_before["deer"] == 24 and gap_before["gap_positive"] == 0.0
    assert before["rank1_day_night"] < 0.9

    result = train_projection(train, config, log_every=100)
    history = result["history"]
    assert [h["step"] for h in history] == [1, 100, 200, 300]
    assert history[-1]["triplet"] < 0.5 * history[0]["triplet"]

    test.embeddings = project(test.embeddings, result["mean"], result["weight"])
    np.testing.assert_allclose(np.linalg.norm(test.embeddings, axis=1), 1.0, atol=1e-5)
    after, gap_after = retrieval(test), day_night_gap(test)
    assert after["rank1_day_night"] >= 0.95 and after["rank1"] >= 0.95
    assert gap_after["gap_positive"] == 1.0  # now every deer's own views are the closest


def test_batch_hard_is_zero_only_beyond_the_margin():
    import torch

    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1])
    assert float(batch_hard(z, labels, margin=0.3)) == 0.0  # pos ~0.995, neg ~0.1
    assert float(batch_hard(z, labels, margin=1.0)) > 0.0


def test_clustering_never_joins_one_photo_or_two_classes():
    world = _world(3, deer=4)
    world.embeddings[:] = world.embeddings[0]  # all alike: only the cannot-links keep deer apart
    buck0, buck2 = world.labels == "s3/0", world.labels == "s3/2"
    world.frames[buck2] = world.frames[buck0]  # bucks 0 and 2 share every photo
    merges, sims = merge_history(world)
    pred = cut(len(world), merges, sims, 0.5)
    for cluster in set(pred.tolist()):
        members = pred == cluster
        assert len(set(world.classes[members].tolist())) == 1
        assert len(set(world.frames[members].tolist())) == int(members.sum())
    assert len(set(pred[world.classes == "doe"].tolist())) == 1  # the does all merge
    assert len(set(pred[world.classes == "buck"].tolist())) >= 2
