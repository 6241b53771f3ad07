"""When and where each frame is taken, and what each frame shows.

A trail camera fires a burst of 3 to 10 frames 1-2 s apart when something moves; events at one
location are minutes to hours apart, more often at dawn and dusk, and after dark the camera shoots
infrared. This module turns a ``World`` into the ordered list of frame plans (one small dict per
image: file name, time, night flag, temperature and where each deer stands), all drawn from the seed
in one process, so rendering can then run in any number of workers with the same result.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from deer_workshop.synthetic.world import Deer, Location, World

START = datetime(2024, 9, 1, 0, 0, 0)
SEASON_DAYS = 100  # September to early December, while bucks carry antlers


def activity(hour: float) -> float:
    """Return the relative chance that a deer passes a camera at this hour (crepuscular)."""
    dawn = math.exp(-((hour - 7.0) ** 2) / 3.0)
    dusk = math.exp(-((hour - 18.5) ** 2) / 4.0)
    return 0.2 + 0.8 * max(dawn, dusk) + (0.25 if hour < 5 or hour > 21 else 0.0)


def is_night(when: datetime) -> bool:
    """Return True when the camera would shoot infrared (between dusk and dawn)."""
    doy = when.timetuple().tm_yday
    day_len = 12.0 + 3.2 * math.sin(2 * math.pi * (doy - 80) / 365.0)
    hour = when.hour + when.minute / 60.0
    return hour < 12.9 - day_len / 2 - 0.3 or hour > 12.9 + day_len / 2 + 0.3


def temperature_c(loc: Location, when: datetime, rng: np.random.Generator) -> int:
    """Return the air temperature the camera prints: season, time of day, location and noise."""
    days = (when - START).total_seconds() / 86400.0
    hour = when.hour + when.minute / 60.0
    seasonal = 21.0 - 0.2 * days
    diurnal = 6.0 * math.cos(2 * math.pi * (hour - 15.0) / 24.0)
    return int(round(seasonal + diurnal + loc.base_temp_c + rng.normal(0.0, 1.0)))


def file_name(loc: Location, counter: int, when: datetime, frame: int) -> str:
    """Return a camera-style path inside the location folder for its ``counter``-th image.

    Schemes: ``dcim`` -> ``DCIM/100MEDIA/IMG_0001.JPG`` (a new folder every 9999 images),
    ``rcnx`` -> ``100RECNX/RCNX0001.JPG``, ``imag`` -> ``IMAG0001.JPG``, ``img`` ->
    ``IMG_0001.JPG``, ``stamp`` -> ``<CODE>_YYYYMMDD_HHMMSS_NN.JPG`` (NN = frame in burst).
    """
    folder, number = divmod(counter, 9999)
    number += 1
    if loc.naming == "dcim":
        return f"DCIM/{100 + folder}MEDIA/IMG_{number:04d}.JPG"
    if loc.naming == "rcnx":
        return f"{100 + folder}RECNX/RCNX{number:04d}.JPG"
    if loc.naming == "imag":
        return f"IMAG{counter + 1:05d}.JPG"
    if loc.naming == "img":
        return f"IMG_{counter + 1:05d}.JPG"
    return f"{loc.code}_{when:%Y%m%d_%H%M%S}_{frame + 1:02d}.JPG"


def burst_lengths(rng: np.random.Generator, total: int) -> list[int]:
    """Split ``total`` frames into bursts of 3 to 10 frames (fewer only if total < 3)."""
    out, left = [], total
    while left > 0:
        n = int(rng.integers(3, 11))
        if left <= 10 and (left - n < 3):
            n = left
        elif left - n < 3:
            n = left - 3
        out.append(n)
        left -= n
    return out


def pick_group(rng: np.random.Generator, world: World, loc: Location) -> list[Deer]:
    """Pick who walks past: a leader, her fawns, sometimes a second or third deer."""
    adults = [d for d in world.deer if d.cls != "fawn" and loc.index in d.home]
    if not adults:
        adults = [d for d in world.deer if d.cls != "fawn"]
    w = np.array(
        [
            d.activity * (d.home_weights[d.home.index(loc.index)] if loc.index in d.home else 0.2)
            for d in adults
        ]
    )
    order = rng.choice(len(adults), size=min(3, len(adults)), replace=False, p=w / w.sum())
    group = [adults[int(order[0])]]
    if group[0].cls == "doe" and rng.random() < 0.8:
        group += [d for d in world.deer if d.mother == group[0].id][: int(rng.integers(1, 3))]
    if len(order) > 1 and rng.random() < 0.22:
        group.append(adults[int(order[1])])
        if len(order) > 2 and rng.random() < 0.2:
            group.append(adults[int(order[2])])
    return group


def plan_tracks(rng: np.random.Generator, group: list[Deer], n: int) -> list[list[dict]]:
    """Plan each deer's position and pose over an ``n``-frame burst.

    Positions are normalised: ``x`` across the frame (0..1, may leave it), ``g`` the ground depth
    (0 = far, near the horizon; 1 = at the bottom edge; a little above 1 = feet below the frame).
    """
    tracks = []
    g0 = float(rng.uniform(0.1, 1.02))
    walking = rng.random() < 0.55
    facing = 1 if rng.random() < 0.5 else -1
    for k, deer in enumerate(group):
        g = float(np.clip(g0 + rng.normal(0, 0.08), 0.05, 1.06)) if k else g0
        late = k > 0 and rng.random() < 0.3
        walk = walking if deer.cls == "fawn" or k == 0 else rng.random() < 0.55
        face = facing if deer.cls == "fawn" or rng.random() < 0.7 else -facing
        speed = float(rng.uniform(0.025, 0.06)) if walk else float(rng.uniform(0.0, 0.008))
        if k and not late and deer.cls == "fawn":  # a fawn keeps close to its mother
            behind = -face * float(rng.uniform(0.06, 0.18)) if walk else rng.normal(0, 0.12)
            x = tracks[0][0]["x"] + float(behind)
        elif walk and (rng.random() < 0.25 or late):
            x = -0.15 - (0.2 * k if late else 0.0) if face > 0 else 1.15 + (0.2 * k if late else 0)
        elif walk:
            x = float(rng.uniform(0.1, 0.55) if face > 0 else rng.uniform(0.45, 0.9))
        else:
            x = float(rng.uniform(0.08, 0.92))
        head = float(rng.uniform(0.55, 0.9)) if walk else float(rng.uniform(0.0, 0.25))
        phase = float(rng.uniform(0, 2 * math.pi))
        frames = []
        for _ in range(n):
            if not walk and rng.random() < 0.2:
                head = float(rng.uniform(0.85, 1.0)) if head < 0.5 else float(rng.uniform(0, 0.2))
            if not walk and rng.random() < 0.06:
                face = -face
            frames.append(
                {
                    "deer": deer.id,
                    "x": round(x, 4),
                    "g": round(g, 4),
                    "facing": face,
                    "head": round(head, 3),
                    "phase": round(phase, 3),
                    "speed": round(speed, 4),
                    "tail_up": bool(head > 0.95),
                }
            )
            x += face * speed * (0.5 + g) + float(rng.normal(0, 0.004))
            g = float(np.clip(g + rng.normal(0, 0.01), 0.05, 1.06))
            phase += (0.9 if walk else 0.1) * math.pi + float(rng.normal(0, 0.2))
        tracks.append(frames)
    return tracks


def _location_frames(world: World, loc: Location, total: int, rng: np.random.Generator):
    """Yield the frame plans of one location in time order."""
    when = START + timedelta(seconds=int(rng.integers(0, 12 * 3600)))
    counter = 0
    lengths = burst_lengths(rng, total)
    # Events every ~2.5 h, denser in big datasets so the season (antlers!) ends by December.
    mean_gap = min(9000.0, SEASON_DAYS * 86400 * 0.45 / max(1, len(lengths)))
    for b, n in enumerate(lengths):
        while True:
            when += timedelta(seconds=int(max(180.0, rng.exponential(mean_gap))))
            if rng.random() < activity(when.hour + when.minute / 60.0):
                break
        night = is_night(when)
        empty = rng.random() < (0.08 if night else 0.15)
        tracks = [] if empty else plan_tracks(rng, pick_group(rng, world, loc), n)
        temp = temperature_c(loc, when, rng)
        t = when
        for k in range(n):
            yield {
                "file": f"{loc.name}/{file_name(loc, counter, t, k)}",
                "location": loc.index,
                "captured_at": t.isoformat(),
                "night": night,
                "temperature_c": temp,
                "burst": f"{loc.code}-{b + 1:05d}",
                "frame": k,
                "burst_len": n,
                "deer": [tr[k] for tr in tracks],
            }
            counter += 1
            t += timedelta(seconds=loc.burst_interval_s + int(rng.integers(0, 2)))
        when = t


def split_images(world: World, images: int, rng: np.random.Generator) -> list[int]:
    """Split the image count over the locations by their weights (busier and quieter cameras)."""
    w = np.array([loc.weight for loc in world.locations])
    counts = np.floor(images * w / w.sum()).astype(int)
    for i in rng.permutation(len(counts))[: images - int(counts.sum())]:
        counts[i] += 1
    return [int(c) for c in counts]


def plan_frames(world: World, images: int) -> list[dict]:
    """Return the plan of every frame, ordered by location then time, with its global index."""
    rng = np.random.default_rng([world.seed, 3])
    frames = []
    for loc, count in zip(world.locations, split_images(world, images, rng), strict=True):
        frames.extend(
            _location_frames(world, loc, count, np.random.default_rng([world.seed, 4, loc.index]))
        )
    for i, f in enumerate(frames):
        f["index"] = i
    return frames
