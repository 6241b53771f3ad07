"""The committed demo detector still scores what models/README.md says on a fresh held-out world.

Skipped only while ``models/deer_detector_demo.pt`` does not exist; once the weights are committed,
models/README.md must state ``CI held-out mAP50: <value>`` (written by train-detector).
"""

from __future__ import annotations

import re

from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS
from deer_workshop.synthetic.train_detector import README_LABEL, ci_holdout_map50

README = DEFAULT_DETECTOR_WEIGHTS.parent / "README.md"


def test_demo_model_map50_matches_readme():
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    found = re.search(re.escape(README_LABEL) + r"\s*[:=]\s*([0-9]*\.?[0-9]+)", text)
    assert found, f"{README} must state '{README_LABEL}: <value>'"
    result = ci_holdout_map50(DEFAULT_DETECTOR_WEIGHTS, device="cpu")
    assert abs(result["map50"] - float(found.group(1))) <= 0.02, result
