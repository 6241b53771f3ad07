"""Compose one trail-camera frame from its plan and measure the ground-truth boxes.

Deer and occluders are painted far to near over the location's background; each deer's box is
taken from what is left of its alpha mask after nearer deer, vegetation, the frame edges and the
camera's info strip have hidden parts of it, so a box is tight around the pixels that can actually
be seen. A deer that would be almost entirely hidden is not drawn at all (and has no box). Then
the lighting of the hour, infrared noise and the info strip are applied.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from deer_workshop.synthetic.deer import render_deer
from deer_workshop.synthetic.occluders import Occluder
from deer_workshop.synthetic.scene import Scene
from deer_workshop.synthetic.world import World

VISIBLE_ALPHA = 0.5  # a pixel belongs to a deer's box when its visible alpha is at least this
MIN_VISIBLE = 0.12  # draw a deer only when this share of it is visible
MIN_SIDE_PX = 10  # ... and its visible box is at least this many pixels on each side
DEER_SCALE = 0.27  # torso length as a share of the frame width for a deer at the bottom edge


def strip_height(height: int) -> int:
    """Return the height in pixels of the camera's info strip."""
    return max(8, int(round(height * 0.045)))


def motion_blur(sprite: Image.Image, k: int) -> Image.Image:
    """Blur an RGBA/LA sprite horizontally over ``k`` pixels (premultiplied: no dark fringe).

    The sprite grows by ``k`` pixels on each side; its content stays where it was plus ``k``.
    """
    if k < 2:
        return sprite
    pre = sprite.convert("RGBa" if sprite.mode == "RGBA" else "La")
    wide = Image.new(pre.mode, (sprite.width + 2 * k, sprite.height))
    wide.paste(pre, (k, 0))
    return wide.filter(ImageFilter.BoxBlur((k / 2, 0))).convert(sprite.mode)


def day_lut(when: datetime, jitter: float) -> list[int]:
    """Return an RGB point table for the daylight of this hour (dim, warm light at dawn/dusk)."""
    hour = when.hour + when.minute / 60.0
    elev = max(0.0, math.sin(math.pi * (hour - 6.0) / 13.5))
    gain = (0.62 + 0.45 * math.sqrt(elev)) * jitter
    warm = 0.14 * (1.0 - elev)
    out = []
    for ch_gain in (gain * (1 + warm), gain, gain * (1 - warm)):
        out += [min(255, int(v * ch_gain)) for v in range(256)]
    return out


class FrameRenderer:
    """Renders frames of one world at one size; caches scenes and the noise field per process."""

    def __init__(self, world: World, width: int, height: int, scenes: dict | None = None):
        self.world, self.width, self.height = world, width, height
        self.deer = {d.id: d for d in world.deer}
        self.scenes = scenes if scenes is not None else {}
        self._noise: np.ndarray | None = None
        self._font = None

    def scene(self, index: int) -> Scene:
        """Return the (cached) scene of location ``index``."""
        if index not in self.scenes:
            loc = self.world.locations[index]
            self.scenes[index] = Scene(loc, self.world.seed, self.width, self.height)
        return self.scenes[index]

    def noise(self) -> np.ndarray:
        """Return a sensor-noise field a little larger than the frame (cropped per image)."""
        if self._noise is None:
            rng = np.random.default_rng([self.world.seed, 6, self.width, self.height])
            self._noise = rng.normal(0, 1, (self.height + 32, self.width + 32)).astype(np.float32)
        return self._noise

    def font(self) -> ImageFont.ImageFont:
        """Return Pillow's bundled default font at the strip's size (never downloaded)."""
        if self._font is None:
            self._font = ImageFont.load_default(size=max(6, int(strip_height(self.height) * 0.6)))
        return self._font

    def sprites(self, spec: dict, scene: Scene, night: bool):
        """Render the deer of a frame: list of (deer, sprite, left, top, feet_y), far first."""
        out = []
        for entry in spec["deer"]:
            deer = self.deer[entry["deer"]]
            g = entry["g"]
            length = self.width * DEER_SCALE * (0.08 + 0.92 * g) * deer.size
            sprite, (ax, ay) = render_deer(
                deer.look, deer.cls, length, entry["head"], entry["phase"], entry["tail_up"], night
            )
            if entry["facing"] < 0:
                sprite = sprite.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                ax = sprite.width - ax
            speed_px = entry["speed"] * self.width * (0.5 + g)
            blur = int(speed_px * (0.1 if night else 0.02))
            if night:
                gain = 0.45 + 0.75 * min(g, 1.0)
                grey = (
                    sprite.convert("RGB")
                    .convert("L")
                    .point(lambda v, k=gain: min(255, int(v * 1.35 * k + 12)))
                )
                sprite = Image.merge("LA", (grey, sprite.getchannel("A")))
            if blur >= 2:
                sprite = motion_blur(sprite, blur)
                ax += blur
            feet = scene.ground_y(g)
            left = int(round(entry["x"] * self.width - ax))
            top = int(round(feet - ay))
            out.append((deer, entry, sprite, left, top, feet))
        out.sort(key=lambda s: s[5])
        return out

    def render(self, spec: dict) -> tuple[Image.Image, list[dict]]:
        """Render one planned frame; return the RGB image and its ground-truth boxes."""
        rng = np.random.default_rng([self.world.seed, 5, spec["index"]])
        loc = self.world.locations[spec["location"]]
        scene = self.scene(loc.index)
        night = spec["night"]
        frame = scene.background(night).copy()
        sh = strip_height(self.height)
        clip = (
            (0, sh, self.width, self.height)
            if loc.strip_top
            else (0, 0, self.width, self.height - sh)
        )
        sprites = self.sprites(spec, scene, night)
        occluders = scene.occluders(night)
        kept, boxes = visible_boxes(sprites, occluders, clip)
        layers = [
            (s[5], s[2].convert(frame.mode), s[2].getchannel("A"), s[3], s[4])
            for s in sprites
            if id(s) in kept
        ]
        layers += [(o.base, o.color, o.alpha, o.x, o.y) for o in occluders]
        if not night and getattr(scene, "shadows", True):
            for s in sprites:
                if id(s) in kept:
                    cast_shadow(frame, s[1]["x"] * self.width, s[5], s[2].width, s[2].height)
        for _, color, alpha, x, y in sorted(layers, key=lambda item: item[0]):
            frame.paste(color, (x, y), alpha)
        frame = self.finish(frame, spec, loc, night, rng)
        return frame, boxes

    def finish(self, frame: Image.Image, spec: dict, loc, night: bool, rng) -> Image.Image:
        """Apply lighting, infrared noise and the info strip; return an RGB image."""
        when = datetime.fromisoformat(spec["captured_at"])
        if night:
            arr = np.asarray(frame).astype(np.float32) * float(rng.uniform(0.85, 1.1))
            dy, dx = (int(v) for v in rng.integers(0, 32, 2))
            arr += (
                float(rng.uniform(4, 9)) * self.noise()[dy : dy + self.height, dx : dx + self.width]
            )
            grey = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
            frame = Image.merge("RGB", (grey, grey, grey))
        else:
            frame = frame.point(day_lut(when, float(rng.uniform(0.92, 1.06))))
        draw_strip(frame, loc, spec, when, self.font())
        return frame


def cast_shadow(frame: Image.Image, x: float, y: float, width: int, height: int) -> None:
    """Darken a soft ellipse on the ground under a deer standing at (x, y)."""
    rx, ry = 0.42 * width, max(2.0, 0.05 * height)
    pad = int(ry)
    mask = Image.new("L", (int(2 * rx) + 2 * pad, int(2 * ry) + 2 * pad), 0)
    ImageDraw.Draw(mask).ellipse([pad, pad, pad + 2 * rx, pad + 2 * ry], fill=80)
    mask = mask.filter(ImageFilter.GaussianBlur(ry / 2))
    frame.paste(0, (int(x - rx) - pad, int(y - ry) - pad), mask)


def visible_boxes(sprites, occluders: list[Occluder], clip):
    """Decide which deer are drawn and measure the box of each one's visible pixels.

    Nearer deer are decided first, so a deer that is dropped does not hide anyone behind it.

    Returns:
        (ids of the kept sprite tuples, boxes in far-to-near order).
    """
    kept, boxes = set(), {}
    for i in range(len(sprites) - 1, -1, -1):
        deer, entry, sprite, left, top, feet = sprites[i]
        x0, y0 = max(left, clip[0]), max(top, clip[1])
        x1, y1 = min(left + sprite.width, clip[2]), min(top + sprite.height, clip[3])
        full = np.asarray(sprite.getchannel("A"), np.float32) / 255.0
        total = float((full >= VISIBLE_ALPHA).sum())
        if x1 <= x0 or y1 <= y0 or total == 0:
            continue
        alpha = full[y0 - top : y1 - top, x0 - left : x1 - left]
        keep = np.ones_like(alpha)
        nearer = [(s[2], s[3], s[4]) for s in sprites[i + 1 :] if id(s) in kept]
        nearer += [(o, o.x, o.y) for o in occluders if o.base > feet]
        for img, ox, oy in nearer:
            ax0, ay0 = max(x0, ox), max(y0, oy)
            ax1, ay1 = min(x1, ox + img.width), min(y1, oy + img.height)
            if ax1 <= ax0 or ay1 <= ay0:
                continue
            band = img.alpha if isinstance(img, Occluder) else img.getchannel("A")
            a = np.asarray(band.crop((ax0 - ox, ay0 - oy, ax1 - ox, ay1 - oy)), np.float32) / 255.0
            keep[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] *= 1.0 - a
        vis = alpha * keep >= VISIBLE_ALPHA
        share = float(vis.sum()) / total
        if share < MIN_VISIBLE:
            continue
        rows, cols = np.flatnonzero(vis.any(axis=1)), np.flatnonzero(vis.any(axis=0))
        bx0, by0 = x0 + int(cols[0]), y0 + int(rows[0])
        bx1, by1 = x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1
        if bx1 - bx0 < MIN_SIDE_PX or by1 - by0 < MIN_SIDE_PX:
            continue
        kept.add(id(sprites[i]))
        boxes[i] = {
            "bbox": [bx0, by0, bx1, by1],
            "class": deer.cls,
            "individual_id": deer.id,
            "visible": round(share, 3),
            "facing": "right" if entry["facing"] > 0 else "left",
            "pose": _pose(entry),
        }
    return kept, [boxes[i] for i in sorted(boxes)]


def _pose(entry: dict) -> str:
    """Name a planned pose for the ground truth: grazing, walking or standing."""
    if entry["head"] < 0.4:
        return "grazing"
    return "walking" if entry["speed"] > 0.02 else "standing"


def draw_strip(frame: Image.Image, loc, spec: dict, when: datetime, font) -> None:
    """Burn the camera's info strip (make, temperature, date, time, camera name) into the frame."""
    w, h = frame.size
    sh = strip_height(h)
    y0 = 0 if loc.strip_top else h - sh
    draw = ImageDraw.Draw(frame)
    draw.rectangle([0, y0, w, y0 + sh], fill=(0, 0, 0))
    temp_c = spec["temperature_c"]
    temp = f"{round(temp_c * 9 / 5 + 32)}°F {temp_c}°C"
    stamp = f"{when:%m/%d/%Y %I:%M:%S %p}"
    if loc.make == "Reconyx":
        left = f"RECONYX  {spec['frame'] + 1}/{spec['burst_len']}"
    else:
        left = loc.make.upper()
    mode = "IR" if spec["night"] else ""
    parts = [left, temp, mode, stamp, loc.name.upper()]
    slots = np.linspace(0.01, 0.99, len(parts))
    for i, (text, fx) in enumerate(zip(parts, slots, strict=True)):
        if not text:
            continue
        tw = draw.textlength(text, font=font)
        x = fx * w - (0 if i == 0 else tw if i == len(parts) - 1 else tw / 2)
        draw.text((x, y0 + sh * 0.2), text, fill=(255, 255, 255), font=font)
