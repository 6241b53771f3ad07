"""Ground-truth boxes match the drawn pixels: one deer on a flat background, with occlusion."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deer_workshop.synthetic.occluders import Occluder
from deer_workshop.synthetic.render import FrameRenderer, strip_height
from deer_workshop.synthetic.world import make_world

W, H = 640, 360
MAGENTA = (255, 0, 255)


class FlatScene:
    """A flat magenta scene with optional occluders and no shadows."""

    shadows = False

    def __init__(self, occluders=()):
        self.horizon = int(0.35 * H)
        self._bg = Image.new("RGB", (W, H), MAGENTA)
        self._occluders = list(occluders)

    def ground_y(self, g):
        return self.horizon + (0.08 + 0.92 * g) * (H - self.horizon)

    def background(self, night):
        return self._bg

    def occluders(self, night):
        return self._occluders


@pytest.fixture(scope="module")
def world():
    return make_world(3, 300, 1)


def _spec(deer_id, x, g, facing=1, head=0.7, phase=0.5):
    entry = {
        "deer": deer_id,
        "x": x,
        "g": g,
        "facing": facing,
        "head": head,
        "phase": phase,
        "speed": 0.0,
        "tail_up": False,
    }
    return {
        "index": 0,
        "location": 0,
        "night": False,
        "captured_at": "2024-09-10T12:00:00",
        "temperature_c": 20,
        "frame": 0,
        "burst_len": 3,
        "deer": [entry],
    }


def _render(world, spec, occluders=()):
    renderer = FrameRenderer(world, W, H, scenes={0: FlatScene(occluders)})
    image, boxes = renderer.render(spec)
    arr = np.asarray(image).astype(int)
    sh = strip_height(H)
    top = world.locations[0].strip_top
    usable = slice(sh, H) if top else slice(0, H - sh)
    return arr, boxes, usable


def _pixel_box(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def _differs(arr, color, tol=24):
    return np.abs(arr - np.asarray(color)).max(axis=-1) > tol


@pytest.mark.parametrize(
    "cls,x,g,facing,head",
    [
        ("buck", 0.5, 0.6, 1, 0.8),
        ("doe", 0.4, 0.3, -1, 0.1),
        ("fawn", 0.6, 0.8, 1, 0.6),
        ("buck", 0.02, 0.7, -1, 1.0),
        ("doe", 0.95, 1.05, 1, 0.5),
    ],
)
def test_box_matches_drawn_pixels(world, cls, x, g, facing, head):
    deer = next(d for d in world.deer if d.cls == cls)
    arr, boxes, usable = _render(world, _spec(deer.id, x, g, facing, head))
    assert len(boxes) == 1
    box = boxes[0]
    assert box["class"] == cls and box["individual_id"] == deer.id
    ref = arr[usable][2, 2]
    mask = np.zeros(arr.shape[:2], bool)
    mask[usable] = _differs(arr[usable], ref)
    expected = _pixel_box(mask)
    assert np.abs(np.array(box["bbox"]) - expected).max() <= 2, (box["bbox"], expected)
    x1, y1, x2, y2 = box["bbox"]
    assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H


def test_box_covers_only_the_unoccluded_part(world):
    deer = next(d for d in world.deer if d.cls == "doe")
    _, boxes, _ = _render(world, _spec(deer.id, 0.5, 0.6))
    full = boxes[0]["bbox"]
    cut = (full[0] + full[2]) // 2
    wall = Image.new("RGBA", (cut, H), (0, 0, 255, 255))
    arr, boxes, usable = _render(
        world, _spec(deer.id, 0.5, 0.6), [Occluder(wall, 0, 0, float("inf"))]
    )
    assert len(boxes) == 1
    bg, blue = arr[usable][2, -3], arr[usable][2, 2]
    mask = np.zeros(arr.shape[:2], bool)
    mask[usable] = _differs(arr[usable], bg) & _differs(arr[usable], blue)
    expected = _pixel_box(mask)
    assert expected[0] >= cut
    assert np.abs(np.array(boxes[0]["bbox"]) - expected).max() <= 2
    assert boxes[0]["visible"] < 0.9


def test_hidden_deer_gets_no_box_and_is_not_drawn(world):
    deer = next(d for d in world.deer if d.cls == "doe")
    wall = Image.new("RGBA", (W, H), (0, 0, 255, 255))
    arr, boxes, usable = _render(
        world, _spec(deer.id, 0.5, 0.6), [Occluder(wall, 0, 0, float("inf"))]
    )
    assert boxes == []
    _, boxes, _ = _render(world, _spec(deer.id, 1.6, 0.6))
    assert boxes == []
