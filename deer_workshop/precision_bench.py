"""The benchmark in two precisions side by side, interleaved in one process (a measurement).

``deer-pipeline bench --precision X`` measures one precision per command; on a shared machine two
commands minutes apart see different loads. This runs the same measurement
(``deer_pipeline/bench/runner.py``: model-only and end-to-end into the real database) for each
precision in turn, one pass each per round, and reports the best pass of each with the ratios and
the load average before and after:

    DEER_HOME=/tmp/deer-prec python -m deer_workshop.precision_bench --images 200 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os

from deer_pipeline import config
from deer_pipeline.bench.runner import BenchSample, ensure_sample, run_benchmark
from deer_pipeline.instance import prepare_environment
from deer_pipeline.resources.models import DetectorResource, EmbedderResource

KEYS = (
    "e2e_images_per_s",
    "model_only_images_per_s",
    "detect_ms_per_image",
    "embed_ms_per_crop",
    "e2e_vs_model_only",
    "detections",
    "detector_precision",
    "embedder_precision",
)


def main(argv: list[str] | None = None) -> int:
    """Run the interleaved measurement; print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="passes of each precision")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precisions", nargs=2, default=["fp32", "auto"], metavar="P")
    args = parser.parse_args(argv)

    urls = prepare_environment()
    paths = ensure_sample(config.deer_home() / "bench", BenchSample(images=args.images))
    device = config.device_spec()
    models = {
        p: (
            DetectorResource(weights=config.detector_weights(), device=device, precision=p).get(),
            EmbedderResource(weights=config.reid_weights(), device=device, precision=p).get(),
        )
        for p in args.precisions
    }
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {p: [] for p in args.precisions}
    for _ in range(args.rounds):
        for p, (det, emb) in models.items():
            runs[p].append(run_benchmark(urls, det, emb, paths, args.batch_size, repeats=1))
    best = {p: max(r, key=lambda x: x["e2e_images_per_s"]) for p, r in runs.items()}
    slow, fast = args.precisions
    result = {
        "images": args.images,
        "rounds": args.rounds,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **{p: {k: best[p][k] for k in KEYS} for p in args.precisions},
        **{f"{p}_e2e_each": [r["e2e_images_per_s"] for r in runs[p]] for p in args.precisions},
        "e2e_ratio": round(best[fast]["e2e_images_per_s"] / best[slow]["e2e_images_per_s"], 3),
        "model_only_ratio": round(
            max(r["model_only_images_per_s"] for r in runs[fast])
            / max(r["model_only_images_per_s"] for r in runs[slow]),
            3,
        ),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
