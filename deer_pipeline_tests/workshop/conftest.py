"""A small generated dataset shared by the synthetic-world tests (rendered once per session)."""

from __future__ import annotations

import json

import pytest

from deer_workshop.synthetic import GROUND_TRUTH, generate_dataset

SMALL = {"images": 160, "locations": 3, "seed": 7, "width": 320, "height": 180}


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """(folder, summary, ground truth) of a 160-image, 3-location world at 320x180."""
    out = tmp_path_factory.mktemp("synthetic") / "data"
    summary = generate_dataset(out, workers=1, **SMALL)
    gt = json.loads((out / GROUND_TRUTH).read_text(encoding="utf-8"))
    return out, summary, gt
