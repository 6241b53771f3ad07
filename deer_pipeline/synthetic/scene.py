"""Procedural scenery of one camera location: background plate and foreground occluders.

A trail camera is strapped to a tree and never moves, so each location has one fixed scene (sky,
tree line, trunks, rocks, grass, sometimes a creek) in its own palette, plus things close to the
lens that hide parts of passing deer (tall grass, a bush, a trunk, a hanging branch). Each occluder
has a ground line: a deer whose feet stand behind that line is drawn behind it. Night versions are
the infrared look of the same scene: grey, lit by the flash (bright near, dark far), slightly soft.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from deer_pipeline.synthetic.world import Location

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


@dataclass
class Occluder:
    """Something in front of the background that hides deer standing behind its ground line."""

    image: Image.Image
    x: int
    y: int
    base: float

    @property
    def width(self) -> int:
        """Return the occluder's width in pixels."""
        return self.image.width

    @property
    def height(self) -> int:
        """Return the occluder's height in pixels."""
        return self.image.height

    @cached_property
    def alpha(self) -> Image.Image:
        """Return the occluder's alpha band."""
        return self.image.getchannel("A")

    @cached_property
    def color(self) -> Image.Image:
        """Return the occluder without alpha, in the frame's mode (RGB by day, L at night)."""
        return self.image.convert("RGB" if self.image.mode == "RGBA" else "L")


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


def _blade(draw, rng, x, y, length, width, color):
    """Draw one bent grass blade from its root at (x, y)."""
    bend = rng.normal(0, 0.25) * length
    draw.line(
        [(x, y), (x + bend * 0.4, y - length * 0.55), (x + bend, y - length)],
        fill=color,
        width=max(1, int(width)),
        joint="curve",
    )


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
        occ = self._paint_occluders(rng, pal)
        self._cache[("bg", False)] = day
        self._cache[("occ", False)] = occ
        self._cache[("bg", True)] = self._infrared(day)
        self._cache[("occ", True)] = [Occluder(_ir_sprite(o.image), o.x, o.y, o.base) for o in occ]

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
            _blade(
                draw,
                rng,
                rng.uniform(0, w),
                y,
                h * 0.03 * (0.2 + depth),
                w / 1920 * (1 + 2 * depth),
                tuple(int(min(255, v * g)) for v in grass),
            )

    def _paint_occluders(self, rng, pal) -> list[Occluder]:
        w, h = self.width, self.height
        kinds = {
            "meadow": ("grass", "bush"),
            "forest": ("trunk", "bush"),
            "creek": ("grass", "branch"),
            "ridge": ("bush", "branch"),
            "field": ("grass",),
        }[self.loc.scene]
        out = []
        for kind in kinds:
            if kind == "grass":
                hh = int(h * rng.uniform(0.08, 0.16))
                x0 = int(rng.uniform(-0.2, 0.4) * w)
                span = int(rng.uniform(0.4, 0.9) * w)
                img = Image.new("RGBA", (span, hh), (0, 0, 0, 0))
                d = ImageDraw.Draw(img)
                for _ in range(int(span / w * 900)):
                    gcol = tuple(int(min(255, v * rng.uniform(0.6, 1.25))) for v in pal[5])
                    _blade(
                        d,
                        rng,
                        rng.uniform(0, span),
                        hh,
                        hh * rng.uniform(0.4, 1.0),
                        w / 1920 * rng.uniform(2, 5),
                        gcol + (255,),
                    )
                out.append(Occluder(img, x0, h - hh, float("inf")))
            elif kind == "bush":
                r = w * rng.uniform(0.06, 0.11)
                img = Image.new("RGBA", (int(4 * r), int(2.4 * r)), (0, 0, 0, 0))
                d = ImageDraw.Draw(img)
                for _ in range(90):
                    lr = r * rng.uniform(0.15, 0.35)
                    cx = 2 * r + float(np.clip(rng.normal(0, 0.7 * r), -1.6 * r, 1.6 * r))
                    cy = 1.4 * r + float(np.clip(rng.normal(0, 0.45 * r), -1.0 * r, 0.6 * r))
                    leaf = tuple(int(min(255, v * rng.uniform(0.55, 1.2))) for v in pal[2])
                    d.ellipse([cx - lr, cy - lr * 0.7, cx + lr, cy + lr * 0.7], fill=leaf + (255,))
                g = rng.uniform(0.35, 0.85)
                base = self.ground_y(g)
                out.append(
                    Occluder(img, int(rng.uniform(-0.05, 0.85) * w), int(base - 2.1 * r), base)
                )
            elif kind == "trunk":
                tw = int(w * rng.uniform(0.04, 0.08))
                base = self.ground_y(rng.uniform(0.55, 0.95))
                img = Image.new("RGBA", (tw, int(base) + 5), (0, 0, 0, 0))
                d = ImageDraw.Draw(img)
                d.rectangle([0, 0, tw, base + 5], fill=pal[6] + (255,))
                for _ in range(6):
                    sx = rng.uniform(0, tw)
                    d.line(
                        [(sx, 0), (sx, base)],
                        fill=tuple(int(v * 0.7) for v in pal[6]) + (255,),
                        width=max(1, tw // 12),
                    )
                x = int(
                    (rng.uniform(0.02, 0.25) if rng.random() < 0.5 else rng.uniform(0.7, 0.93)) * w
                )
                out.append(Occluder(img, x, 0, base))
            else:
                bw, bh = int(w * rng.uniform(0.2, 0.35)), int(h * rng.uniform(0.15, 0.3))
                img = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
                d = ImageDraw.Draw(img)
                d.line(
                    [(0, 0), (bw * 0.6, bh * 0.5), (bw, bh * 0.6)],
                    fill=pal[6] + (255,),
                    width=max(2, w // 300),
                )
                for _ in range(70):
                    t = rng.random()
                    cx, cy = (
                        bw * t + rng.normal(0, bw * 0.05),
                        bh * 0.55 * t + rng.normal(0, bh * 0.12),
                    )
                    lr = w * rng.uniform(0.008, 0.02)
                    leaf = tuple(int(min(255, v * rng.uniform(0.6, 1.3))) for v in pal[2])
                    d.ellipse([cx - lr, cy - lr * 0.5, cx + lr, cy + lr * 0.5], fill=leaf + (255,))
                right = rng.random() < 0.5
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if right else img
                out.append(Occluder(img, w - bw if right else 0, 0, float("inf")))
        return out

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


def _ir_sprite(img: Image.Image) -> Image.Image:
    """Return the infrared (LA) version of a near RGBA occluder: the flash over-exposes it."""
    grey = img.convert("RGB").convert("L").point(lambda v: min(255, int(v * 1.9 + 30)))
    return Image.merge("LA", (grey, img.getchannel("A")))
