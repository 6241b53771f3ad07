"""Same seed and arguments give the same bytes, whatever the number of workers."""

from __future__ import annotations

import hashlib

from deer_workshop.synthetic import generate_dataset


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_any_workers(tmp_path):
    args = {"images": 14, "locations": 2, "seed": 11, "width": 256, "height": 144}
    generate_dataset(tmp_path / "a", workers=1, **args)
    generate_dataset(tmp_path / "b", workers=2, **args)
    generate_dataset(tmp_path / "c", workers=1, **args)
    a, b, c = (_hashes(tmp_path / k) for k in "abc")
    assert len(a) == 15 and "ground_truth.json" in a
    assert a == b == c


def test_other_seed_other_world(tmp_path):
    args = {"images": 6, "locations": 1, "width": 256, "height": 144, "workers": 1}
    generate_dataset(tmp_path / "a", seed=1, **args)
    generate_dataset(tmp_path / "b", seed=2, **args)
    assert _hashes(tmp_path / "a") != _hashes(tmp_path / "b")
