"""Torch fp32 and bf16, ONNX Runtime and OpenVINO on the same images, side by side (a measure).

Issue 21 asked whether another CPU runtime beats torch's bf16 path by enough (1.3x end to end) to
be worth a dependency. This exports the committed detector with ultralytics (ONNX, OpenVINO) and
the re-ID backbone with ``torch.onnx`` / ``openvino.convert_model``, then runs every backend on the
same letterboxed batches and the same crops, interleaved, best of ``--rounds``: each backend's
network output goes through the project's own NMS and box scaling
(``deer_pipeline.vision.detector``), so the boxes compare like with like. Reported per backend:
detector ms/image, embedder ms/crop, model-only images/s (detector plus the crops of the boxes
found), and against torch fp32 the share of boxes (confidence >= 0.3) with a same-class twin at
IoU >= 0.9 and the lowest embedding cosine. OpenVINO's CPU plugin picks bf16 itself on CPUs with
AMX (its default inference precision hint there).

ONNX Runtime and OpenVINO are not project dependencies; install them beside the venv to run this:

    pip install --target /tmp/ortov onnx onnxruntime openvino onnxslim   # then drop duplicates
    PYTHONPATH=$PWD:/tmp/ortov python -m deer_workshop.runtime_alternatives --images 64
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deer_pipeline import config
from deer_pipeline.vision.decode import decode_file
from deer_pipeline.vision.detector import Detector, DetectorConfig
from deer_pipeline.vision.embedder import Embedder, EmbedderConfig

CONF = 0.3
MATCH_IOU = 0.9


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def _box_share(ref, got) -> float:
    boxes = matched = 0
    for r, g in zip(ref, got, strict=True):
        keep = np.flatnonzero(r.confidence >= CONF)
        boxes += len(keep)
        if len(keep) and len(g):
            same = np.array([[r.class_name[i] == n for n in g.class_name] for i in keep])
            best = np.where(same, _iou(r.boxes[keep], g.boxes), 0).max(axis=1)
            matched += int(np.sum(best >= MATCH_IOU))
    return round(matched / boxes, 4) if boxes else 1.0


class _Exported:
    """The detector's network replaced by an exported model: (b, 3, h, w) -> (b, 4 + nc, n)."""

    def __init__(self, run):
        self.run = run

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(x.contiguous().numpy()))


def _detectors(weights: str, work: Path) -> dict[str, Detector]:
    import onnxruntime as ort
    import openvino as ov
    from ultralytics import YOLO

    local = work / "detector.pt"
    shutil.copyfile(weights, local)
    threads = torch.get_num_threads()
    onnx_path = YOLO(str(local)).export(format="onnx", dynamic=True, simplify=True)
    ov_dir = YOLO(str(local)).export(format="openvino", dynamic=True)
    torch.set_num_threads(threads)  # ultralytics' select_device sets CPUs - 1 (1 on 2 cores)
    base = dict(device="cpu", batch_size=8)
    dets = {
        "torch_fp32": Detector(DetectorConfig(weights, precision="fp32", **base)),
        "torch_bf16": Detector(DetectorConfig(weights, precision="bf16", **base)),
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ort_det = Detector(DetectorConfig(weights, precision="fp32", **base))
    ort_det.model = _Exported(lambda x: session.run(None, {name: x})[0])
    dets["onnxruntime"] = ort_det
    core = ov.Core()
    xml = next(Path(ov_dir).glob("*.xml"))
    compiled = core.compile_model(core.read_model(xml), "CPU", _ov_config())
    ov_det = Detector(DetectorConfig(weights, precision="fp32", **base))
    ov_det.model = _Exported(lambda x: compiled(x)[0])
    dets["openvino"] = ov_det
    return dets


def _ov_config() -> dict:
    """OpenVINO's CPU plugin on as many threads as torch (its default precision hint kept)."""
    return {"INFERENCE_NUM_THREADS": torch.get_num_threads()}


def _embedders(weights: str, work: Path) -> dict[str, object]:
    import onnxruntime as ort
    import openvino as ov

    fp32 = Embedder(EmbedderConfig(weights, device="cpu", precision="fp32"))
    bf16 = Embedder(EmbedderConfig(weights, device="cpu", precision="bf16"))
    example = torch.zeros(16, 3, 224, 224)
    onnx_path = work / "reid.onnx"
    torch.onnx.export(
        fp32.model,
        (example,),
        str(onnx_path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
        dynamo=False,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(ov.convert_model(str(onnx_path)), "CPU", _ov_config())

    def exported(run):
        def embed(crops: torch.Tensor) -> np.ndarray:
            out = []
            for chunk in crops.split(16):
                x = ((chunk - fp32._mean) * fp32._inv_std).contiguous().numpy()
                out.append(torch.nn.functional.normalize(torch.from_numpy(run(x)), dim=1))
            return torch.cat(out).numpy()

        return embed

    return {
        "torch_fp32": fp32.embed_inputs,
        "torch_bf16": bf16.embed_inputs,
        "onnxruntime": exported(lambda x: session.run(None, {"x": x})[0]),
        "openvino": exported(lambda x: compiled(x)[0]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sample", default=None, help="folder of JPGs (default: bench sample)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of every backend (default torch's); 1 is fairer on a busy machine",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if args.sample:
        paths = sorted(Path(args.sample).rglob("*.JPG"))[: args.images]
    else:
        from deer_pipeline.bench.runner import BenchSample, ensure_sample

        paths = ensure_sample(config.deer_home() / "bench", BenchSample(images=200))
        paths = paths[: args.images]
    frames = [decode_file(p, 640) for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        dets = _detectors(config.detector_weights(), Path(tmp))
        embs = _embedders(config.reid_weights(), Path(tmp))
        reference = dets["torch_fp32"].detect(frames)
        crops = torch.cat(_crops(config.reid_weights(), frames, reference))
        want = embs["torch_fp32"](crops)
        timing = {k: {"detect": np.inf, "embed": np.inf} for k in dets}
        outputs = {}
        for k in dets:  # warm-up (first shapes)
            outputs[k] = dets[k].detect(frames[:8])
            embs[k](crops[:16])
        for _ in range(args.rounds):
            for k in dets:
                t = time.perf_counter()
                outputs[k] = dets[k].detect(frames)
                timing[k]["detect"] = min(timing[k]["detect"], time.perf_counter() - t)
                t = time.perf_counter()
                got = embs[k](crops)
                timing[k]["embed"] = min(timing[k]["embed"], time.perf_counter() - t)
                timing[k]["cosine"] = float(np.sum(got * want, axis=1).min())
    result = {"images": len(frames), "crops": len(crops), "threads": torch.get_num_threads()}
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    for k, t in timing.items():
        seconds = t["detect"] + t["embed"]
        result[k] = {
            "detect_ms_per_image": round(1000 * t["detect"] / len(frames), 2),
            "embed_ms_per_crop": round(1000 * t["embed"] / len(crops), 2),
            "model_only_images_per_s": round(len(frames) / seconds, 2),
            "box_share_vs_fp32": _box_share(reference, outputs[k]),
            "min_cosine_vs_fp32": round(t["cosine"], 5),
        }
    bf16 = result["torch_bf16"]["model_only_images_per_s"]
    for k in ("onnxruntime", "openvino"):
        result[k]["vs_torch_bf16"] = round(result[k]["model_only_images_per_s"] / bf16, 3)
    print(json.dumps(result))
    return 0


def _crops(weights: str, frames, detections) -> list[torch.Tensor]:
    cutter = Embedder(EmbedderConfig(weights, device="cpu", precision="fp32"))
    return [cutter.crops(f, d.boxes) for f, d in zip(frames, detections, strict=True) if len(d)]


if __name__ == "__main__":
    raise SystemExit(main())
