"""The herd survey's pictures: one PNG per figure, drawn with matplotlib's Agg renderer.

Each function draws one figure of a :class:`~deer_pipeline.exports.herd_survey.Survey` into a
file beside the page; the page shows the same numbers as a table under each picture. Figures are
built with ``matplotlib.figure.Figure`` (no pyplot state, safe in a Dagster step) and the bundled
DejaVu font, so nothing is fetched.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from deer_pipeline.exports.herd_survey import (
    UNIQUE_KEYS,
    Survey,
    most_seen,
    sightings_histogram,
)

COLOURS = {"buck": "#8c510a", "doe": "#d8b365", "fawn": "#5ab4ac", "unknown": "#9e9e9e"}
DAY, NIGHT = "#f2b134", "#2b3a67"
DPI = 100


def _save(fig: Figure, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    return name


def plot_unique(survey: Survey, out: Path) -> str:
    """Unique deer by class at each location and overall (stacked horizontal bars)."""
    rows = [("All locations", survey.unique)] + [(x.name, x.unique) for x in survey.locations]
    fig = Figure(figsize=(8, 1.2 + 0.5 * len(rows)))
    ax = fig.subplots()
    labels = [name for name, _ in rows][::-1]
    left = [0] * len(rows)
    for cls in UNIQUE_KEYS:
        values = [counts[cls] for _, counts in rows][::-1]
        ax.barh(labels, values, left=left, color=COLOURS[cls], label=cls)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("unique deer (identified individuals)")
    ax.set_title("Unique deer by class")
    ax.legend(loc="lower right", fontsize=9)
    return _save(fig, out, "herd-unique.png")


def plot_estimate(survey: Survey, out: Path) -> str:
    """Identified individuals next to the camera-survey estimate, per class and in total."""
    estimate = survey.jacobson()
    keys = (("bucks", "buck"), ("does", "doe"), ("fawns", "fawn"))
    identified = [survey.unique[c] for _, c in keys]
    identified.append(sum(identified))
    estimated = [estimate[k] or 0 for k, _ in keys] + [estimate["total"] or 0]
    labels = ["bucks", "does", "fawns", "bucks + does + fawns"]
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], identified, width=0.4, color="#35978f", label="identified")
    ax.bar([x + 0.2 for x in xs], estimated, width=0.4, color="#bf812d", label="camera survey")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("deer")
    ax.set_title("Identified individuals and the camera-survey estimate")
    ax.legend(fontsize=9)
    return _save(fig, out, "herd-estimate.png")


def plot_ratios(survey: Survey, out: Path) -> str:
    """Does per buck and fawns per doe, from individuals and from photos."""
    ind, pho = survey.ratios(), survey.photo_ratios()
    keys = ("does_per_buck", "fawns_per_doe")
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], [ind[k] or 0 for k in keys], 0.4, color="#35978f")
    ax.bar([x + 0.2 for x in xs], [pho[k] or 0 for k in keys], 0.4, color="#bf812d")
    ax.set_xticks(list(xs), ["does per buck", "fawns per doe"])
    ax.legend(["from unique individuals", "from photos"], fontsize=9)
    ax.set_title("Herd ratios")
    return _save(fig, out, "herd-ratios.png")


def plot_sightings(survey: Survey, out: Path) -> str:
    """Histogram: how many deer were seen once, twice, ..."""
    hist = sightings_histogram(survey)
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    ax.bar(list(hist), list(hist.values()), width=0.8, color="#5e3c99")
    ax.set_xlabel("sightings of one deer in the window")
    ax.set_ylabel("deer")
    ax.set_title("Sightings per deer")
    if hist and max(hist) <= 30:
        ax.set_xticks(list(hist))
    return _save(fig, out, "herd-sightings.png")


def plot_activity(survey: Survey, out: Path) -> str:
    """Deer detections per hour of the camera's clock, daylight and infrared night frames apart."""
    hours = list(range(24))
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    ax.bar(hours, survey.activity_day, color=DAY, label="day (colour frames)")
    ax.bar(
        hours,
        survey.activity_night,
        bottom=survey.activity_day,
        color=NIGHT,
        label="night (infrared frames)",
    )
    ax.set_xticks(hours, [f"{h:02d}" for h in hours], fontsize=8)
    ax.set_xlabel("hour of day (camera's local time)")
    ax.set_ylabel("deer detections")
    ax.set_title("Activity by hour")
    ax.legend(fontsize=9)
    return _save(fig, out, "herd-activity.png")


def plot_rai(survey: Survey, out: Path) -> str:
    """Deer detections per 100 camera-days at each location."""
    rows = [x for x in survey.locations][::-1]
    fig = Figure(figsize=(8, 1.2 + 0.5 * len(rows)))
    ax = fig.subplots()
    ax.barh([x.name for x in rows], [x.rai or 0 for x in rows], color="#1b7837")
    ax.set_xlabel("deer detections per 100 camera-days")
    ax.set_title("Relative abundance index by location")
    return _save(fig, out, "herd-rai.png")


def plot_timeline(survey: Survey, out: Path) -> str:
    """When the most-seen deer were seen, one row per deer, coloured by location."""
    top = most_seen(survey)[::-1]
    names = {x.key: x.name for x in survey.locations}
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    colour = {key: palette[i % len(palette)] for i, key in enumerate(names)}
    fig = Figure(figsize=(9, 1.2 + 0.45 * max(len(top), 1)))
    ax = fig.subplots()
    shown = set()
    for row, deer in enumerate(top):
        by_loc: dict[str, list] = {}
        for when, key in zip(deer.times, deer.where, strict=True):
            by_loc.setdefault(key, []).append(when)
        for key, times in by_loc.items():
            label = names.get(key, key) if key not in shown else None
            shown.add(key)
            ax.plot(times, [row] * len(times), "o", ms=5, color=colour.get(key), label=label)
    ax.set_yticks(range(len(top)), [f"deer {d.id} ({d.sex})" for d in top], fontsize=8)
    ax.set_xlabel("date (camera's local time)")
    ax.set_title("Timeline of the most-seen deer")
    if shown:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.autofmt_xdate()
    return _save(fig, out, "herd-timeline.png")


def draw_plots(survey: Survey, out: Path) -> dict[str, str]:
    """Draw every figure into ``out``; return ``{figure: file name}``."""
    return {
        "unique": plot_unique(survey, out),
        "estimate": plot_estimate(survey, out),
        "ratios": plot_ratios(survey, out),
        "sightings": plot_sightings(survey, out),
        "activity": plot_activity(survey, out),
        "rai": plot_rai(survey, out),
        "timeline": plot_timeline(survey, out),
    }
