"""Draw one deer as an RGBA sprite from its persistent look and its pose in this frame.

The detector must learn doe / fawn / buck (antlers, spots, size) and the re-ID model must learn
individuals (coat tone, patches, scar, ear notch, ear tag, antler shape), so all of these are drawn
from the individual's ``look`` and never drawn at random per frame. The deer is drawn side-on,
facing right, in body units (1 = torso length) with the origin on the ground below the body; the
caller mirrors it for a deer facing left. Drawing is supersampled for anti-aliased edges.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw

# Sprite extent in body units: x (tail..nose/antlers), y (antler tips..ground).
X0, X1, Y0, Y1 = -0.72, 1.02, -1.8, 0.08


def _shade(color, gain: float) -> tuple[int, int, int, int]:
    """Return an opaque RGBA colour scaled by ``gain`` and clipped."""
    return tuple(int(min(255, max(0, c * gain))) for c in color[:3]) + (255,)


_CIRCLE = [(math.cos(2 * math.pi * i / 28), math.sin(2 * math.pi * i / 28)) for i in range(28)]


def ellipse_points(cx, cy, rx, ry, angle=0.0):
    """Return polygon points of a rotated ellipse (PIL ellipses cannot rotate)."""
    ca, sa = math.cos(angle), math.sin(angle)
    ax, ay, bx, by = rx * ca, rx * sa, -ry * sa, ry * ca
    return [(cx + ax * c + bx * s, cy + ay * c + by * s) for c, s in _CIRCLE]


class _Pen:
    """Draws in body units onto a supersampled RGBA canvas, with a body mask for markings."""

    def __init__(self, length_px: float):
        self.ss = 3 if length_px < 120 else 2 if length_px < 420 else 1
        self.k = length_px * self.ss
        size = (max(2, int((X1 - X0) * self.k)), max(2, int((Y1 - Y0) * self.k)))
        self.img = Image.new("RGBA", size, (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.img)
        self.body = Image.new("L", size, 0)
        self.body_draw = ImageDraw.Draw(self.body)
        self.detail = Image.new("RGBA", size, (0, 0, 0, 0))
        self.detail_draw = ImageDraw.Draw(self.detail)

    def px(self, pts):
        """Convert body-unit points to canvas pixels."""
        return [((x - X0) * self.k, (y - Y0) * self.k) for x, y in pts]

    def poly(self, pts, color, body=False, detail=False):
        """Fill a polygon; ``body`` adds it to the marking mask, ``detail`` draws on that layer."""
        p = self.px(pts)
        (self.detail_draw if detail else self.draw).polygon(p, fill=color)
        if body:
            self.body_draw.polygon(p, fill=255)

    def ellipse(self, cx, cy, rx, ry, color, angle=0.0, body=False, detail=False):
        """Fill a rotated ellipse."""
        self.poly(ellipse_points(cx, cy, rx, ry, angle), color, body, detail)

    def line(self, pts, color, width, detail=False):
        """Draw a thick polyline of ``width`` body units with rounded joints."""
        w = max(1, int(round(width * self.k)))
        (self.detail_draw if detail else self.draw).line(
            self.px(pts), fill=color, width=w, joint="curve"
        )

    def finish(self) -> tuple[Image.Image, tuple[int, int]]:
        """Paste markings through the body mask, downsample; return (sprite, its offset)."""
        box = self.img.getchannel("A").getbbox() or (0, 0, self.ss, self.ss)
        ss = self.ss
        box = (box[0] // ss * ss, box[1] // ss * ss, -(-box[2] // ss) * ss, -(-box[3] // ss) * ss)
        img, detail = self.img.crop(box), self.detail.crop(box)
        img.paste(detail, (0, 0), ImageChops.multiply(detail.getchannel("A"), self.body.crop(box)))
        if ss > 1:
            img = img.convert("RGBa").reduce(ss).convert("RGBA")
        return img, (box[0] // ss, box[1] // ss)


def _leg(pen: _Pen, top, a1, a2, l1, l2, w1, w2, c_up, c_low):
    """Draw a two-segment leg from ``top`` with segment angles from vertical; return the hoof."""
    knee = (top[0] + l1 * math.sin(a1), top[1] + l1 * math.cos(a1))
    hoof = (knee[0] + l2 * math.sin(a2), knee[1] + l2 * math.cos(a2))
    pen.line([top, knee], c_up, w1)
    pen.line([knee, hoof], c_low, w2)
    pen.ellipse(hoof[0] + 0.01, hoof[1] - 0.012, 0.028, 0.018, (40, 34, 30, 255))
    return hoof


def _bezier(p0, p1, p2, n=10):
    """Return ``n`` points of a quadratic Bezier curve."""
    out = []
    for i in range(n):
        t = i / (n - 1)
        a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t * t
        out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return out


def _antler(pen: _Pen, spec: dict, base, fwd, up, gain: float):
    """Draw one antler in the head's frame (``fwd`` along the muzzle, ``up`` above the skull)."""
    L = spec["beam"]

    def at(f, u):
        return (base[0] + f * fwd[0] + u * up[0], base[1] + f * fwd[1] + u * up[1])

    rise, curl = spec["rise"], spec["curl"]
    local = _bezier((0, 0), (-0.45 * L, 0.9 * L * rise), (0.55 * L * curl, 0.95 * L * rise))
    beam = [at(f, u) for f, u in local]
    color = _shade(spec["tone"], gain)
    pen.line(beam, color, 0.024)
    if spec["brow"] > 0:
        pen.line(
            [
                at(0.02 * L, 0.12 * L),
                at(0.02 * L + 0.6 * spec["brow"] * L, 0.12 * L + spec["brow"] * L),
            ],
            color,
            0.015,
        )
    for i, (t, length, ang) in enumerate(spec["tines"]):
        f, u = local[min(len(local) - 1, int(t * (len(local) - 1)))]
        length *= L * (0.45 if i == spec["broken"] else 1.0)
        tip = (f + length * math.sin(ang), u + length * math.cos(ang))
        pen.line([at(f, u), at(*tip)], color, 0.016)


def _head(pen: _Pen, look, cls, hc, a, night):
    """Draw ears (with notch and tag), antlers, head, face and eye; ``a`` is the muzzle angle."""
    coat = look["coat"]
    fwd = (math.cos(a), math.sin(a))
    up = (math.sin(a), -math.cos(a))
    hs = 1.2 if cls == "fawn" else 1.0

    def at(f, u):
        return (hc[0] + f * fwd[0] + u * up[0], hc[1] + f * fwd[1] + u * up[1])

    ear_dir = math.atan2(-0.6 * fwd[1] + up[1], -0.6 * fwd[0] + up[0])
    el = 0.075 * look["ear_len"] * hs
    for side in ("far", "near"):
        off = -0.035 * hs if side == "far" else 0.0
        base = at(-0.045 * hs + off, 0.05 * hs)
        ec = (base[0] + el * math.cos(ear_dir), base[1] + el * math.sin(ear_dir))
        pen.ellipse(*ec, el, 0.03 * hs, _shade(coat, 0.75 if side == "far" else 1.0), ear_dir)
        if side == "near":
            pen.ellipse(*ec, el * 0.7, 0.016 * hs, _shade(coat, 1.35), ear_dir)
        if look["ear_notch"] == side:
            tip = (base[0] + 1.6 * el * math.cos(ear_dir), base[1] + 1.6 * el * math.sin(ear_dir))
            back = ear_dir + math.pi / 2
            pen.poly(
                [
                    tip,
                    (
                        tip[0] + 0.05 * hs * math.cos(back) - 0.02 * hs * math.cos(ear_dir),
                        tip[1] + 0.05 * hs * math.sin(back) - 0.02 * hs * math.sin(ear_dir),
                    ),
                    (
                        tip[0] - 0.05 * hs * math.cos(ear_dir),
                        tip[1] - 0.05 * hs * math.sin(ear_dir),
                    ),
                ],
                (0, 0, 0, 0),
            )
        if side == "near" and look["ear_tag"]:
            pen.ellipse(*ec, 0.022 * hs, 0.018 * hs, tuple(look["ear_tag"]) + (255,))
    if look["antlers"]:
        abase = at(-0.03 * hs, 0.055 * hs)
        spec = look["antlers"]
        far_base = (abase[0] - spec["spread"] * fwd[0], abase[1] - spec["spread"] * fwd[1])
        _antler(pen, spec, far_base, fwd, up, 0.72)
    pen.ellipse(*hc, 0.1 * hs, 0.068 * hs, _shade(coat, 1.0), a)
    pen.ellipse(*at(0.11 * hs, -0.012 * hs), 0.08 * hs, 0.045 * hs, _shade(coat, 0.95), a)
    pen.ellipse(*at(0.0, 0.03 * hs), 0.07 * hs, 0.03 * hs, _shade(coat, look["face_dark"]), a)
    pen.ellipse(*at(0.1 * hs, -0.045 * hs), 0.05 * hs, 0.02 * hs, _shade(look["belly"], 1), a)
    pen.ellipse(*at(0.185 * hs, -0.01 * hs), 0.026 * hs, 0.026 * hs, (28, 24, 22, 255))
    eye = at(0.03 * hs, 0.022 * hs)
    pen.ellipse(*eye, 0.022 * hs, 0.017 * hs, _shade(look["belly"], 1.0))
    if night:
        pen.ellipse(*eye, 0.02 * hs, 0.02 * hs, (255, 255, 255, 255))
    else:
        pen.ellipse(*eye, 0.014 * hs, 0.012 * hs, (18, 16, 16, 255))
    if look["antlers"]:
        _antler(pen, look["antlers"], abase, fwd, up, 1.0)


def _body_details(pen: _Pen, look, tx, ty, rx, ry):
    """Draw belly, rump patch, persistent patches, scar and fawn spots (clipped to the body)."""
    pen.ellipse(tx + 0.02, ty + 0.75 * ry, 0.33, 0.35 * ry, _shade(look["belly"], 1.0), detail=True)
    pen.ellipse(tx - 0.5, ty - 0.1 * ry, 0.06, 0.5 * ry, _shade(look["belly"], 0.95), detail=True)
    for p in look["patches"]:
        pen.ellipse(
            tx + p["u"] * rx,
            ty + p["v"] * ry,
            p["rx"] * rx,
            p["ry"] * ry,
            _shade(look["coat"], p["gain"]),
            p["angle"],
            detail=True,
        )
    scar = look["scar"]
    if scar:
        x0, y0 = tx + scar["u"] * rx, ty + scar["v"] * ry
        dx, dy = (
            math.cos(scar["angle"]) * scar["length"] * rx,
            math.sin(scar["angle"]) * 0.5 * (scar["length"] * rx),
        )
        pen.line([(x0, y0), (x0 + dx, y0 + dy)], _shade(look["coat"], 1.75), 0.018, detail=True)
    for u, v, r in look["spots"]:
        pen.ellipse(tx + u * rx * 1.1, ty + v * ry, r, r * 0.8, (242, 236, 226, 255), detail=True)


def render_deer(
    look: dict, cls: str, length_px: float, head: float, phase: float, tail_up: bool, night: bool
) -> tuple[Image.Image, tuple[int, int]]:
    """Render one deer facing right.

    Args:
        look: the individual's persistent appearance (``world.make_look``).
        cls: ``doe``, ``fawn`` or ``buck``.
        length_px: torso length in pixels (sets the scale).
        head: 0 = grazing (head on the ground) .. 1 = alert (head high).
        phase: gait phase in radians (leg swing).
        tail_up: raise the white tail flag.
        night: draw infrared eyeshine instead of a dark eye.

    Returns:
        The RGBA sprite (cropped to its drawn pixels) and the pixel position of its ground anchor.
    """
    pen = _Pen(length_px)
    coat = look["coat"]
    st, hh = look["stocky"], 0.58 * look["leg_len"]
    rx, ry = 0.42, 0.17 * st
    tx, ty = 0.0, -(hh + 0.1 * st)
    swing = (0.38 if head > 0.4 else 0.06) * math.sin(phase)
    legs = {"ff": (0.27, -swing), "bf": (-0.3, swing), "fn": (0.27, swing), "bn": (-0.3, -swing)}
    up_c, low_c = _shade(coat, 1.0), _shade(coat, look["leg_shade"])
    for key in ("ff", "bf", "fn", "bn"):
        if key == "fn":
            _torso(pen, look, cls, tx, ty, rx, ry, head, tail_up)
        x, s = legs[key]
        g = 0.7 if key[1] == "f" and key != "fn" else 1.0
        front = key[0] == "f"
        a1, a2 = (s, 0.6 * s) if front else (s + 0.28, s - 0.32)
        l1 = hh * (0.5 if front else 0.52)
        l2 = (hh + 0.02 - l1 * math.cos(a1)) / max(0.3, math.cos(a2))
        _leg(
            pen,
            (x + (0.02 if key[1] == "f" else 0.0), ty + 0.05),
            a1,
            a2,
            l1,
            l2,
            0.075 if front else 0.1,
            0.035,
            _shade(up_c, g),
            _shade(low_c, g),
        )
    hc, a = _head_pose(look, ty, head)
    _head(pen, look, cls, hc, a, night)
    img, (ox, oy) = pen.finish()
    anchor = ((0.0 - X0) * length_px - ox, (0.0 - Y0) * length_px - oy)
    return _texture(img, anchor, look, ty, ry, length_px, oy)


def _head_pose(look, ty, head):
    """Return the head centre and muzzle angle for a head height ``head`` in 0..1."""
    up = (0.56, ty - 0.5 * look["neck_len"])
    down = (0.63, -0.1)
    hc = (down[0] + (up[0] - down[0]) * head, down[1] + (up[1] - down[1]) * head)
    return hc, 1.35 - 0.9 * head


def _torso(pen: _Pen, look, cls, tx, ty, rx, ry, head, tail_up):
    """Draw tail, neck, torso, chest and rump, then the markings clipped to them."""
    coat = look["coat"]
    hc, a = _head_pose(look, ty, head)
    nw = 0.07 * (1.25 if cls == "buck" else 1.0)
    tail_a = -2.2 if tail_up else 1.9
    tail_c = (tx - 0.47, ty - 0.6 * ry)
    if tail_up:
        pen.ellipse(
            tail_c[0] - 0.05, tail_c[1] - 0.05, 0.09, 0.045, _shade(look["belly"], 1.0), tail_a
        )
    else:
        pen.ellipse(tail_c[0] - 0.02, tail_c[1] + 0.06, 0.08, 0.035, _shade(coat, 0.85), tail_a)
    base = (tx + 0.3, ty - 0.35 * ry)
    top = (hc[0] - 0.06 * math.cos(a), hc[1] - 0.06 * math.sin(a))
    length = math.hypot(top[0] - base[0], top[1] - base[1]) or 1.0
    px, py = -(top[1] - base[1]) / length, (top[0] - base[0]) / length
    wb, wh = 1.6 * nw, 0.8 * nw
    neck = [
        (base[0] + px * wb, base[1] + py * wb),
        (top[0] + px * wh, top[1] + py * wh),
        (top[0] - px * wh, top[1] - py * wh),
        (base[0] - px * wb, base[1] - py * wb),
    ]
    pen.poly(neck, _shade(coat, 1.0), body=True)
    pen.ellipse(tx, ty, rx, ry, _shade(coat, 1.0), body=True)
    pen.ellipse(tx + 0.27, ty + 0.05 * ry, 0.17, 1.05 * ry, _shade(coat, 1.0), body=True)
    pen.ellipse(tx - 0.3, ty - 0.1 * ry, 0.18, 1.12 * ry, _shade(coat, 1.0), body=True)
    _body_details(pen, look, tx, ty, rx, ry)


_GRAIN: list = []


def _grain(h: int, w: int) -> np.ndarray:
    """Return a fixed fur-grain multiplier field (0.9..1.0) of at least (h, w), cropped."""
    if not _GRAIN or _GRAIN[0].shape[0] < h or _GRAIN[0].shape[1] < w:
        size = max(h, w, 1200)
        rng = np.random.default_rng(12345)
        fine = rng.random((size // 3, size // 3)).astype(np.float32)
        up = np.asarray(Image.fromarray(fine, "F").resize((size, size), Image.Resampling.BILINEAR))
        _GRAIN[:] = [0.9 + 0.1 * up]
    return _GRAIN[0][:h, :w]


def _texture(img: Image.Image, anchor, look, ty, ry, length_px, row0):
    """Darken the back, add fur grain, crop to drawn pixels and return (sprite, anchor)."""
    box = img.getchannel("A").getbbox()
    if box is None:
        return img, (int(anchor[0]), int(anchor[1]))
    img = img.crop(box)
    h, w = img.height, img.width
    rows = (np.arange(row0 + box[1], row0 + box[3], dtype=np.float32) / length_px) + Y0
    top = ty - ry
    dark = np.clip((ty - rows) / max(ry, 1e-3), 0.0, 1.0) * np.clip(1 - (top - rows) / 0.12, 0, 1)
    factor = 1.0 - (1.0 - look["back_shade"]) * dark
    mult = (factor[:, None] * _grain(h, w) * 255.0).astype(np.uint8)
    m = Image.fromarray(mult, "L")
    rgb = ImageChops.multiply(img.convert("RGB"), Image.merge("RGB", (m, m, m)))
    rgb.putalpha(img.getchannel("A"))
    return rgb, (int(round(anchor[0] - box[0])), int(round(anchor[1] - box[1])))
