"""Generate a whole synthetic dataset: JPEG folders per location plus ``ground_truth.json``.

The demo, the end-to-end tests, the identity metrics and 35k-image scale runs all start here. The
plan of every frame is drawn in this process from the seed; rendering and JPEG encoding run in a
pool of worker processes, each image with its own random stream derived from (seed, image index),
so the bytes do not depend on the number of workers. Results stream to disk in image order: no
image is kept in memory after it is written.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from datetime import datetime
from pathlib import Path

from deer_workshop.synthetic.exif import jpeg_bytes
from deer_workshop.synthetic.render import FrameRenderer
from deer_workshop.synthetic.schedule import plan_frames
from deer_workshop.synthetic.world import World, make_world

GROUND_TRUTH = "ground_truth.json"
SEX = {"doe": "female", "buck": "male", "fawn": "unknown"}

_WORKER: dict = {}


def _init_worker(world: World, width: int, height: int, out: str) -> None:
    """Set up a pool worker: one renderer (with its scene caches) per process."""
    _WORKER["renderer"] = FrameRenderer(world, width, height)
    _WORKER["out"] = Path(out)


def _render_in_worker(spec: dict) -> tuple[dict, int]:
    """Pool task: render and write one frame."""
    return render_to_file(_WORKER["renderer"], _WORKER["out"], spec)


def render_to_file(renderer: FrameRenderer, out: Path, spec: dict) -> tuple[dict, int]:
    """Render one planned frame, write its JPEG under ``out`` and return (entry, bytes written).

    Args:
        renderer: the frame renderer of this world and size.
        out: the dataset root.
        spec: one frame plan from ``schedule.plan_frames``.

    Returns:
        The frame's ground-truth entry and the JPEG's size in bytes.
    """
    loc = renderer.world.locations[spec["location"]]
    image, boxes = renderer.render(spec)
    when = datetime.fromisoformat(spec["captured_at"])
    data = jpeg_bytes(image, when, loc.make, loc.model)
    path = out / spec["file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    entry = {
        "file": spec["file"],
        "boxes": boxes,
        "location": loc.name,
        "captured_at": spec["captured_at"],
        "night": spec["night"],
        "burst": spec["burst"],
        "frame": spec["frame"],
        "burst_len": spec["burst_len"],
        "camera_make": loc.make,
        "camera_model": loc.model,
        "temperature_c": spec["temperature_c"],
        "width": renderer.width,
        "height": renderer.height,
    }
    return entry, len(data)


def world_metadata(world: World) -> dict:
    """Return the extra ground-truth keys: locations and individuals with their looks."""
    names = [loc.name for loc in world.locations]
    return {
        "seed": world.seed,
        "locations": [
            {
                "name": loc.name,
                "code": loc.code,
                "camera_make": loc.make,
                "camera_model": loc.model,
                "scene": loc.scene,
            }
            for loc in world.locations
        ],
        "individuals": [
            {
                "individual_id": d.id,
                "class": d.cls,
                "sex": SEX[d.cls],
                "mother": d.mother,
                "size": round(d.size, 3),
                "home_locations": [names[i] for i in d.home],
                "look": d.look,
            }
            for d in world.deer
        ],
    }


def _results(world: World, frames: list[dict], width: int, height: int, out: Path, workers: int):
    """Yield (entry, bytes) per frame in order, rendering in-process or in a worker pool."""
    if workers <= 1:
        renderer = FrameRenderer(world, width, height)
        for spec in frames:
            yield render_to_file(renderer, out, spec)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(
        workers, initializer=_init_worker, initargs=(world, width, height, str(out))
    ) as pool:
        yield from pool.imap(_render_in_worker, frames, chunksize=4)


def generate_dataset(
    out,
    images: int,
    locations: int,
    seed: int = 0,
    width: int = 1920,
    height: int = 1080,
    workers: int | None = None,
) -> dict:
    """Write a synthetic trail-camera dataset with ground truth.

    Args:
        out: output folder; gets ``<location folder>/...JPG`` and ``ground_truth.json``.
        images: number of images in total.
        locations: number of camera locations (top-level folders).
        seed: world seed; the same seed (and arguments) gives the same bytes.
        width: image width in pixels.
        height: image height in pixels.
        workers: rendering processes (default: all CPUs); does not change the output.

    Returns:
        A summary: images, locations, individuals, boxes, empty and night images, bursts,
        seconds, images_per_s, bytes_per_image, bytes_total and the output path.
    """
    if images < 1 or locations < 1:
        raise ValueError("images and locations must be at least 1")
    if width < 64 or height < 64:
        raise ValueError("width and height must be at least 64 pixels")
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = make_world(seed, images, locations)
    frames = plan_frames(world, images)
    workers = max(1, min(workers or os.cpu_count() or 1, (len(frames) + 3) // 4))
    counts = {"boxes": 0, "empty": 0, "night": 0, "bytes": 0}
    tmp = out / (GROUND_TRUTH + ".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write('{"images": [\n')
        for i, (entry, size) in enumerate(_results(world, frames, width, height, out, workers)):
            fh.write((",\n" if i else "") + json.dumps(entry))
            counts["boxes"] += len(entry["boxes"])
            counts["empty"] += not entry["boxes"]
            counts["night"] += entry["night"]
            counts["bytes"] += size
        meta = json.dumps(world_metadata(world))
        fh.write("\n], " + meta[1:] + "\n")
    tmp.replace(out / GROUND_TRUTH)
    seconds = time.perf_counter() - start
    return {
        "out": str(out),
        "images": len(frames),
        "locations": locations,
        "individuals": len(world.deer),
        "boxes": counts["boxes"],
        "empty_images": counts["empty"],
        "night_images": counts["night"],
        "bursts": len({f["burst"] for f in frames}),
        "width": width,
        "height": height,
        "workers": workers,
        "seconds": round(seconds, 2),
        "images_per_s": round(len(frames) / seconds, 2),
        "bytes_per_image": int(counts["bytes"] / len(frames)),
        "bytes_total": counts["bytes"],
    }
