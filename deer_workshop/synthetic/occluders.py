"""Things close to the lens that hide parts of passing deer: tall grass, a bush, a trunk, a branch.

Each occluder is an RGBA cut-out at a fixed place with a ground line (``base``, an image row): a
deer whose feet stand behind that line (higher in the image) is drawn behind it, a nearer deer in
front. Grass at the bottom edge and branches hanging from the top are in front of everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image, ImageDraw


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

    def infrared(self) -> Occluder:
        """Return the infrared (LA) version of this RGBA occluder: the flash over-exposes it."""
        grey = self.image.convert("RGB").convert("L").point(lambda v: min(255, int(v * 1.9 + 30)))
        return Occluder(
            Image.merge("LA", (grey, self.image.getchannel("A"))), self.x, self.y, self.base
        )


def blade(draw, rng, x, y, length, width, color):
    """Draw one bent grass blade from its root at (x, y)."""
    bend = rng.normal(0, 0.25) * length
    draw.line(
        [(x, y), (x + bend * 0.4, y - length * 0.55), (x + bend, y - length)],
        fill=color,
        width=max(1, int(width)),
        joint="curve",
    )


def paint_occluders(
    rng, pal, scene: str, width: int, height: int, ground_y: Callable[[float], float]
) -> list[Occluder]:
    """Paint the foreground occluders of a scene kind with its palette.

    Args:
        rng: the scene's random generator.
        pal: the scene palette (see ``scene.PALETTES``).
        scene: the scene kind (meadow, forest, creek, ridge, field).
        width: frame width in pixels.
        height: frame height in pixels.
        ground_y: maps a ground depth (0 far .. 1 bottom edge) to an image row.

    Returns:
        The occluders, in no particular order.
    """
    w, h = width, height
    kinds = {
        "meadow": ("grass", "bush"),
        "forest": ("trunk", "bush"),
        "creek": ("grass", "branch"),
        "ridge": ("bush", "branch"),
        "field": ("grass",),
    }[scene]
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
                blade(
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
            base = ground_y(g)
            out.append(Occluder(img, int(rng.uniform(-0.05, 0.85) * w), int(base - 2.1 * r), base))
        elif kind == "trunk":
            tw = int(w * rng.uniform(0.04, 0.08))
            base = ground_y(rng.uniform(0.55, 0.95))
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
            x = int((rng.uniform(0.02, 0.25) if rng.random() < 0.5 else rng.uniform(0.7, 0.93)) * w)
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
