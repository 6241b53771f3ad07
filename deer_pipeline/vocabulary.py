"""The deer class vocabulary and the sex rule: the one place that spells ``doe``/``fawn``/``buck``.

The detector, the identities, review, exports and the database's CHECK constraints all speak of
the same three classes. ``doe`` and ``buck`` are adult females and males; a ``fawn`` is its own
class (its sex is not visible), so the three exclude each other: one animal is never two of them.
Any other class name (a detector's ``animal``, an imported MegaDetector box) is compatible with
everything and means "sex unknown".
"""

from __future__ import annotations

DEER_CLASSES: tuple[str, ...] = ("doe", "fawn", "buck")
NOT_DEER = "not-deer"
CORRECTION_CLASSES: tuple[str, ...] = (*DEER_CLASSES, NOT_DEER)
UNKNOWN_SEX = "unknown"
SEXES: tuple[str, ...] = ("doe", "buck", "fawn", UNKNOWN_SEX)  # values of deer.sex

# Camtrap DP observation terms for each class: (sex, lifeStage).
CAMTRAP_TERMS: dict[str, tuple[str | None, str]] = {
    "doe": ("female", "adult"),
    "buck": ("male", "adult"),
    "fawn": (None, "juvenile"),
}


def classes_compatible(a: str, b: str) -> bool:
    """Return whether two class names may belong to one animal.

    ``doe``, ``fawn`` and ``buck`` exclude each other; any other name (an unknown class) is
    compatible with everything.
    """
    return a == b or a not in DEER_CLASSES or b not in DEER_CLASSES


def deer_sex(class_name: str) -> str:
    """Return the ``deer.sex`` value for a class (``unknown`` for a non-deer class name)."""
    return class_name if class_name in DEER_CLASSES else UNKNOWN_SEX


def compatible_sexes(class_name: str) -> list[str]:
    """Return the deer sexes a detection of ``class_name`` may join (``fawn`` is its own)."""
    if class_name in DEER_CLASSES:
        return [class_name, UNKNOWN_SEX]
    return list(SEXES)


def individual_id(deer_id: int | None) -> str:
    """The Camtrap DP ``individualID`` of a deer (empty for a detection with no identity)."""
    return "" if deer_id is None else f"deer-{deer_id}"
