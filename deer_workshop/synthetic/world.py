"""Camera locations and the deer population of the synthetic world.

Real photos with boxes and identities are not ours to ship, so the project invents a world whose
truth it knows. This module draws the parts that stay fixed for a whole dataset: where the cameras
are (and which make, naming scheme and scenery each has) and which individual deer live there, with
an appearance that persists across every frame they appear in (coat tone, markings, size, antlers)
so a re-ID model can tell them apart. Everything follows from the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from deer_pipeline.vocabulary import DEER_CLASSES

LOCATION_NAMES = (
    "North Ridge",
    "Creek Crossing",
    "Oak Flat",
    "Pine Hollow",
    "South Meadow",
    "Cedar Draw",
    "Beaver Pond",
    "Old Orchard",
    "Fence Line",
    "Salt Lick",
    "Hemlock Bench",
    "Power Line Cut",
)
# (make, model, naming scheme); schemes are described in schedule.file_name.
CAMERAS = (
    ("Browning", "BTC-8E-HP5", "dcim"),
    ("Reconyx", "HyperFire 2", "rcnx"),
    ("Bushnell", "Core DS-4K", "imag"),
    ("Stealth Cam", "G42NG", "stamp"),
    ("Spypoint", "FORCE-20", "stamp"),
    ("Browning", "BTC-9PX", "img"),
)
SCENES = (
    "ridge",
    "creek",
    "forest",
    "forest",
    "meadow",
    "forest",
    "creek",
    "meadow",
    "field",
    "field",
    "forest",
    "meadow",
)  # one per name in LOCATION_NAMES
CLASSES = DEER_CLASSES  # the one vocabulary (deer_pipeline.vocabulary)
TAG_COLORS = ((230, 200, 30), (40, 160, 60), (220, 60, 40), (240, 240, 240), (60, 90, 200))


@dataclass(frozen=True)
class Location:
    """One camera location: a top-level folder of the dataset."""

    index: int
    name: str
    code: str
    make: str
    model: str
    naming: str
    scene: str
    horizon: float
    strip_top: bool
    base_temp_c: float
    burst_interval_s: int
    weight: float


@dataclass(frozen=True)
class Deer:
    """One individual deer: class, home range and its persistent look."""

    id: str
    cls: str
    size: float
    home: tuple[int, ...]
    home_weights: tuple[float, ...]
    activity: float
    mother: str | None = None
    look: dict = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    """Everything that stays fixed for one dataset."""

    seed: int
    locations: tuple[Location, ...]
    deer: tuple[Deer, ...]


def population_size(images: int, locations: int) -> int:
    """Return how many individuals live in a world of this many images and locations."""
    return int(min(120, max(6, round(2 * locations + images / 60))))


def make_locations(rng: np.random.Generator, count: int) -> list[Location]:
    """Draw ``count`` camera locations with names, cameras and scenery."""
    out = []
    for i in range(count):
        base = LOCATION_NAMES[i % len(LOCATION_NAMES)]
        name = base if i < len(LOCATION_NAMES) else f"{base} {i // len(LOCATION_NAMES) + 1}"
        code = "".join(w[0] for w in base.split())[:3].upper() + (
            str(i // len(LOCATION_NAMES) + 1) if i >= len(LOCATION_NAMES) else ""
        )
        make, model, naming = CAMERAS[i % len(CAMERAS)]
        out.append(
            Location(
                index=i,
                name=name,
                code=code,
                make=make,
                model=model,
                naming=naming,
                scene=SCENES[i % len(LOCATION_NAMES)],
                horizon=float(rng.uniform(0.3, 0.45)),
                strip_top=make == "Reconyx",
                base_temp_c=float(rng.uniform(-2.0, 2.0)),
                burst_interval_s=int(rng.integers(1, 3)),
                weight=float(rng.uniform(0.7, 1.3)),
            )
        )
    return out


def _coat(rng: np.random.Generator) -> list[int]:
    """Draw a coat colour between grey-brown, red-brown and dark brown."""
    hue = rng.uniform(0, 1)
    light = rng.uniform(0.62, 1.15)
    grey = np.array([128, 112, 94])
    red = np.array([158, 104, 62])
    base = grey * (1 - hue) + red * hue
    return [int(c) for c in np.clip(base * light, 40, 210)]


def _tint(rng: np.random.Generator, base, low: float, high: float) -> list[int]:
    """Return ``base`` scaled by one random gain with a slight warm/cool shift."""
    gain = rng.uniform(low, high)
    warm = rng.uniform(-0.04, 0.04)
    shift = np.array([1 + warm, 1.0, 1 - warm])
    return [int(c) for c in np.clip(np.array(base) * gain * shift, 0, 255)]


def _antlers(rng: np.random.Generator) -> dict:
    """Draw a per-individual antler shape (beam length, curl, tines, a broken tine)."""
    points = int(rng.choice([0, 1, 2, 2, 3, 3, 4]))
    tines = sorted(
        [
            [
                float(rng.uniform(0.3, 0.95)),
                float(rng.uniform(0.35, 0.8)),
                float(rng.uniform(-0.35, 0.35)),
            ]
            for _ in range(points)
        ]
    )
    return {
        "beam": float(rng.uniform(0.16, 0.3) if points else rng.uniform(0.1, 0.16)),
        "rise": float(rng.uniform(0.5, 1.3)),
        "curl": float(rng.uniform(0.2, 1.1)),
        "spread": float(rng.uniform(0.015, 0.05)),
        "brow": float(rng.uniform(0.0, 0.35)) if rng.random() < 0.6 else 0.0,
        "tines": tines,
        "broken": int(rng.integers(0, points)) if points and rng.random() < 0.25 else -1,
        "tone": _tint(rng, (205, 186, 150), 0.8, 1.1),
    }


def make_look(rng: np.random.Generator, cls: str) -> dict:
    """Draw the appearance of one individual: every field is used by the renderer."""
    coat = _coat(rng)
    patches = []
    for _ in range(int(rng.integers(1, 4)) if cls != "fawn" else int(rng.integers(0, 2))):
        lighter = rng.random() < 0.5
        patches.append(
            {
                "u": float(rng.uniform(-0.75, 0.75)),
                "v": float(rng.uniform(-0.6, 0.5)),
                "rx": float(rng.uniform(0.12, 0.3)),
                "ry": float(rng.uniform(0.2, 0.5)),
                "angle": float(rng.uniform(0, math.pi)),
                "gain": float(rng.uniform(1.5, 1.9) if lighter else rng.uniform(0.4, 0.6)),
            }
        )
    scar = None
    if rng.random() < 0.3:
        scar = {
            "u": float(rng.uniform(-0.6, 0.5)),
            "v": float(rng.uniform(-0.4, 0.3)),
            "length": float(rng.uniform(0.25, 0.5)),
            "angle": float(rng.uniform(-0.8, 0.8)),
        }
    spots = []
    if cls == "fawn":
        for _ in range(int(rng.integers(18, 36))):
            spots.append(
                [
                    float(rng.uniform(-0.85, 0.8)),
                    float(rng.uniform(-0.85, 0.25)),
                    float(rng.uniform(0.018, 0.035)),
                ]
            )
    return {
        "coat": coat,
        "belly": _tint(rng, (236, 229, 214), 0.88, 1.05),
        "leg_shade": float(rng.uniform(0.7, 0.95)),
        "back_shade": float(rng.uniform(0.6, 0.9)),
        "face_dark": float(rng.uniform(0.5, 0.9)),
        "stocky": float(rng.uniform(0.9, 1.15) * (1.1 if cls == "buck" else 1.0)),
        "leg_len": float(rng.uniform(0.9, 1.1) * (1.12 if cls == "fawn" else 1.0)),
        "neck_len": float(rng.uniform(0.85, 1.15)),
        "ear_len": float(rng.uniform(0.9, 1.2) * (1.2 if cls == "fawn" else 1.0)),
        "patches": patches,
        "scar": scar,
        "ear_notch": str(rng.choice(["none", "near", "far"], p=[0.6, 0.2, 0.2])),
        "ear_tag": list(TAG_COLORS[int(rng.integers(len(TAG_COLORS)))])
        if rng.random() < 0.15
        else None,
        "spots": spots,
        "antlers": _antlers(rng) if cls == "buck" else None,
    }


def _home_range(rng: np.random.Generator, primary: int, count: int, roam: float):
    """Return (locations, weights): a primary location plus sometimes its ring neighbours."""
    home, weights = [primary], [1.0]
    for step in (1, -1):
        other = (primary + step) % count
        if count > 1 and other not in home and rng.random() < roam:
            home.append(other)
            weights.append(float(rng.uniform(0.3, 0.8)))
    return tuple(home), tuple(weights)


def make_population(rng: np.random.Generator, count: int, n_locations: int) -> list[Deer]:
    """Draw ``count`` individuals: bucks and does, fawns following their mothers."""
    n_bucks = max(1, round(0.35 * count))
    n_fawns = max(1, round(0.25 * count))
    n_does = count - n_bucks - n_fawns
    primaries = rng.permutation(np.resize(np.arange(n_locations), n_bucks + n_does))
    adults, fawns = [], []
    for i in range(n_bucks + n_does):
        cls = "buck" if i < n_bucks else "doe"
        home, weights = _home_range(
            rng, int(primaries[i]), n_locations, 0.6 if cls == "buck" else 0.4
        )
        adults.append(
            Deer(
                id="",
                cls=cls,
                size=float(rng.uniform(1.0, 1.15) if cls == "buck" else rng.uniform(0.86, 1.0)),
                home=home,
                home_weights=weights,
                activity=float(rng.lognormal(0.0, 0.6)),
                look=make_look(rng, cls),
            )
        )
    # Fawns follow the most active does first, so that fawns are seen even in small worlds.
    does = sorted(
        (i for i, d in enumerate(adults) if d.cls == "doe"), key=lambda i: -adults[i].activity
    )
    for j in range(n_fawns):
        fawns.append((does[j % len(does)], float(rng.uniform(0.52, 0.66)), make_look(rng, "fawn")))
    order = rng.permutation(len(adults) + len(fawns))
    ids = [f"D{int(k) + 1:03d}" for k in order]
    out = [replace(d, id=ids[i]) for i, d in enumerate(adults)]
    for j, (mother, size, look) in enumerate(fawns):
        m = out[mother]
        out.append(
            Deer(
                id=ids[len(adults) + j],
                cls="fawn",
                size=size,
                home=m.home,
                home_weights=m.home_weights,
                activity=m.activity,
                mother=m.id,
                look=look,
            )
        )
    return sorted(out, key=lambda d: d.id)


def make_world(seed: int, images: int, locations: int) -> World:
    """Build the fixed part of a world (locations and population) from the seed."""
    rng = np.random.default_rng([seed, 1])
    locs = make_locations(rng, locations)
    deer = make_population(rng, population_size(images, locations), locations)
    return World(seed=seed, locations=tuple(locs), deer=tuple(deer))
