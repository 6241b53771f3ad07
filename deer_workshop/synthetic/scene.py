"""Procedural scenery of one camera location: the background plate, by day and at night.

A trail camera is strapped to a tree and never moves, so each location has one fixed scene (sky,
tree line, trunks, rocks, grass, sometimes a creek) in its own palette, plus the foreground
occluders of ``occluders.py``. The night version is the infrared look of the same scene: grey, lit
by the flash (bright near, dark far), slightly soft. Scenes are built once per process and cached.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from deer_workshop.synthetic.occluders import Occluder, blade, paint_occluders
from deer_workshop.synthetic.world import Location

PALETTES = {
    # sky top, sky horizon, tree line, ground far, ground near, grass, bark
    "meadow": (
        (120, 165, 215),
        (205, 222, 235),
        (52, 78, 48),
        (150, 158, 92),
        (104, 124, 60),
        (120, 150, 60),
        (92, 80, 66),
    ),
    "forest": (
        (140, 175, 205),
        (200, 215, 220),
        (40, 62, 40),
        (118, 96, 66),
        (92, 72, 50),
        (96, 112, 54),
        (70, 58, 48),
    ),
    "creek": (
        (125, 170, 215),
        (210, 225, 235),
        (48, 74, 50),
        (132, 142, 88),
        (98, 112, 62),
        (112, 138, 62),
        (88, 76, 62),
    ),
    "ridge": (
        (110, 155, 210),
        (200, 215, 232),
        (70, 86, 62),
        (160, 146, 110),
        (128, 112, 82),
        (160, 148, 96),
        (96, 86, 74),
    ),
    "field": (
        (130, 175, 220),
        (215, 228, 236),
        (58, 82, 52),
        (188, 168, 108),
        (160, 138, 84),
        (190, 170, 100),
        (90, 78, 64),
    ),
}


def _jitter(rng, color, amount=0.08):
    """Return ``color`` with a random per-location gain."""
    g = rng.uniform(1 - amount, 1 + amount, 3)
    return tuple(int(np.clip(c * k, 0, 255)) for c, k in zip(color, g, strict=True))


def smooth_noise(rng, width, height, cells, octaves=3) -> np.ndarray:
    """Return value noise in 0..1 of shape (height, width): random grids, bicubic-upscaled."""
    out = np.zeros((height, width), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = max(2, cells * 2**o)
        grid = rng.random((max(2, n * height // max(width, 1)), n)).astype(np.float32)
        up = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
        out += amp * np.asarray(up)
        total += amp
        amp *= 0.5
    return np.clip(out / total, 0, 1)


def _gradient(top, bottom, height, width) -> np.ndarray:
    """Return a vertical colour gradient of shape (height, width, 3)."""
    t = np.linspace(0, 1, max(height, 1), dtype=np.float32)[:, None, None]
    col = np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t
    return np.broadcast_to(col, (height, width, 3))


class Scene:
    """The fixed scene of one location at one image size."""

    shadows = True  # deer cast a soft shadow on this scene's ground by day

    def __init__(self, loc: Location, seed: int, width: int, height: int):
        self.loc, self.width, self.height = loc, width, height
        self.horizon = int(loc.horizon * height)
        self.rng_seed = [seed, 2, loc.index]
        self._cache: dict = {}

    def ground_y(self, g: float) -> float:
        """Return the image row of ground depth ``g`` (0 far .. 1 bottom edge)."""
        return self.horizon + (0.08 + 0.92 * g) * (self.height - self.horizon)

    def background(self, night: bool) -> Image.Image:
        """Return the background plate (RGB by day, L at night), built once and cached."""
        key = ("bg", night)
        if key not in self._cache:
            self._build()
        return self._cache[key]

    def occluders(self, night: bool) -> list[Occluder]:
        """Return the foreground occluders (RGBA by day, LA at night)."""
        key = ("occ", night)
        if key not in self._cache:
            self._build()
        return self._cache[key]

    def _build(self):
        rng = np.random.default_rng(self.rng_seed)
        pal = [_jitter(rng, c) for c in PALETTES[self.loc.scene]]
        day = self._paint(rng, pal)
        occ = paint_occluders(rng, pal, self.loc.scene, self.width, self.height, self.ground_y)
        self._cache[("bg", False)] = day
        self._cache[("occ", False)] = occ
        self._cache[("bg", True)] = self._infrared(day)
        self._cache[("occ", True)] = [o.infrared() for o in occ]

    def _paint(self, rng, pal) -> Image.Image:
        w, h, hz = self.width, self.height, self.horizon
        sky_top, sky_hz, trees, far, near, grass, bark = pal
        arr = np.empty((h, w, 3), np.float32)
        arr[:hz] = _gradient(sky_top, sky_hz, hz, w)
        ground = _gradient(far, near, h - hz, w)
        tex = smooth_noise(rng, w, h - hz, 6)
        arr[hz:] = ground * (0.8 + 0.4 * tex)[..., None]
        arr[hz:] += rng.normal(0, 5, (h - hz, w, 1)).astype(np.float32)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        self._treeline(draw, rng, trees, sky_hz)
        if self.loc.scene == "creek":
            self._creek(draw, rng)
        self._trunks(draw, rng, bark, trees)
        self._rocks(draw, rng)
        self._grass(draw, rng, grass)
        return img

    def _treeline(self, draw, rng, color, sky):
        w, hz = self.width, self.horizon
        for layer, (height, mix) in enumerate(((0.16, 0.45), (0.1, 0.0))):
            c = tuple(int(a * (1 - mix) + b * mix) for a, b in zip(color, sky, strict=True))
            xs = np.linspace(0, w, 90)
            bumps = smooth_noise(rng, 90, 1, 8, 2)[0]
            top = hz - self.height * height * (0.35 + 0.9 * bumps) * (1 + 0.2 * layer)
            draw.polygon([(0, hz + 2)] + list(zip(xs, top, strict=True)) + [(w, hz + 2)], fill=c)

    def _creek(self, draw, rng):
        w, h, hz = self.width, self.height, self.horizon
        y = hz + (h - hz) * rng.uniform(0.12, 0.3)
        xs = np.linspace(0, w, 40)
        wob = smooth_noise(rng, 40, 2, 4, 2)
        top = y + (wob[0] - 0.5) * 0.04 * h
        bottom = top + (0.05 + 0.04 * wob[1]) * h
        draw.polygon(
            list(zip(xs, top, strict=True)) + list(zip(xs[::-1], bottom[::-1], strict=True)),
            fill=(86, 104, 112),
        )
        for _ in range(60):
            x = rng.uniform(0, w)
            yy = np.interp(x, xs, top) + rng.uniform(0.1, 0.9) * (
                np.interp(x, xs, bottom) - np.interp(x, xs, top)
            )
            draw.line(
                [(x, yy), (x + rng.uniform(10, 60) * w / 1920, yy)],
                fill=(150, 170, 176),
                width=max(1, w // 960),
            )

    def _trunks(self, draw, rng, bark, foliage):
        w, h, hz = self.width, self.height, self.horizon
        n = {"forest": 12, "meadow": 3, "creek": 5, "ridge": 4, "field": 2}[self.loc.scene]
        bases = sorted(hz + (h - hz) * rng.uniform(0.0, 0.22, n))
        for base in bases:
            depth = (base - hz) / (h - hz) + 0.08
            x, tw = rng.uniform(0, w), w * depth * rng.uniform(0.08, 0.16)
            top = hz - h * rng.uniform(0.3, 0.6) if self.loc.scene != "forest" else -10
            c = tuple(int(v * (0.7 + depth)) for v in bark)
            draw.polygon(
                [
                    (x - tw / 2, base),
                    (x - tw * 0.35, top),
                    (x + tw * 0.35, top),
                    (x + tw / 2, base),
                ],
                fill=c,
            )
            for _ in range(4):
                sx = x + rng.uniform(-0.3, 0.3) * tw
                draw.line(
                    [(sx, base), (sx, top)],
                    fill=tuple(int(v * 0.8) for v in c),
                    width=max(1, int(tw * 0.05)),
                )
            if self.loc.scene != "forest":
                for _ in range(14):
                    r = tw * rng.uniform(1.0, 2.2)
                    cx, cy = x + rng.normal(0, tw * 1.5), top + rng.normal(0, tw * 1.2)
                    g = rng.uniform(0.8, 1.25)
                    draw.ellipse(
                        [cx - r, cy - r * 0.8, cx + r, cy + r * 0.8],
                        fill=tuple(int(min(255, v * g)) for v in foliage),
                    )
        if self.loc.scene == "forest":
            for _ in range(60):
                r = w * rng.uniform(0.02, 0.06)
                cx, cy = rng.uniform(0, w), rng.uniform(-0.05, 0.12) * h
                g = rng.uniform(0.7, 1.3)
                draw.ellipse(
                    [cx - r, cy - r * 0.7, cx + r, cy + r * 0.7],
                    fill=tuple(int(min(255, v * g)) for v in foliage),
                )

    def _rocks(self, draw, rng):
        w, h, hz = self.width, self.height, self.horizon
        n = {"ridge": 14, "creek": 8}.get(self.loc.scene, 3)
        for _ in range(n):
            g = rng.uniform(0.05, 0.9)
            y = hz + (h - hz) * g
            r = w * (0.01 + 0.05 * g) * rng.uniform(0.5, 1.3)
            x = rng.uniform(0, w)
            base = rng.uniform(95, 150)
            ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
            rad = r * rng.uniform(0.75, 1.1, 9)
            pts = [
                (x + a * np.cos(t), y - r * 0.3 + 0.55 * a * np.sin(t))
                for a, t in zip(rad, ang, strict=True)
            ]
            draw.ellipse(
                [x - r * 1.1, y - r * 0.2, x + r * 1.1, y + r * 0.12], fill=(int(base * 0.62),) * 3
            )
            draw.polygon(pts, fill=(int(base),) * 3)
            top = [(px, py) for px, py in pts if py < y - r * 0.3]
            if len(top) >= 3:
                draw.polygon(top, fill=(int(base * 1.2),) * 3)

    def _grass(self, draw, rng, grass):
        w, h, hz = self.width, self.height, self.horizon
        n = int(
            {"meadow": 5000, "field": 5000, "ridge": 2500}.get(self.loc.scene, 3000)
            * w
            * h
            / (1920 * 1080)
        )
        ys = np.sort(hz + (h - hz) * rng.random(n) ** 0.7)
        for y in ys:
            depth = (y - hz) / (h - hz)
            g = rng.uniform(0.7, 1.3)
            blade(
                draw,
                rng,
                rng.uniform(0, w),
                y,
                h * 0.03 * (0.2 + depth),
                w / 1920 * (1 + 2 * depth),
                tuple(int(min(255, v * g)) for v in grass),
            )

    def _infrared(self, day: Image.Image) -> Image.Image:
        """Return the infrared night plate: grey, flash falloff with depth, dark sky, soft."""
        w, h, hz = self.width, self.height, self.horizon
        arr = np.asarray(day).astype(np.float32)
        grey = arr @ np.array([0.25, 0.6, 0.15], np.float32)
        rows = np.arange(h, dtype=np.float32)
        fall = np.clip((rows - hz * 0.9) / (h - hz * 0.9), 0.0, 1.0) ** 1.4
        light = 0.12 + 1.15 * fall
        cols = np.linspace(-1, 1, w, dtype=np.float32)
        vign = 1.0 - 0.35 * cols**2
        out = grey * light[:, None] * vign[None, :]
        out[: int(hz * 0.8)] *= 0.25
        img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "L")
        return img.filter(ImageFilter.GaussianBlur(max(0.5, w / 1920)))
