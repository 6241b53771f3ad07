"""Extensions the runtime finds through the ``deer_pipeline.plugins`` entry-point group.

The runtime never imports the workshop (``deer_workshop``: the synthetic world, training, long
measurements) by name. The workshop registers itself as a plugin in ``pyproject.toml``; a plugin
is a module that may offer ``COMMAND_MODULES`` (CLI modules with a ``register(subparsers)``) and
``generate_dataset(out, images, locations, seed=0, width=1920, height=1080)`` (a synthetic
trail-camera set with ``ground_truth.json``, which the demo run and the benchmark use). An install
without the workshop still runs every product command; the ones that need it say so in one line.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from types import ModuleType

from deer_pipeline.errors import DeerError

GROUP = "deer_pipeline.plugins"


@cache
def plugins() -> tuple[ModuleType, ...]:
    """Return the installed plugin modules, in entry-point name order.

    A plugin registered but not shipped (the production image installs the distribution without
    ``deer_workshop``) is left out; any other import error is raised.
    """
    found = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    return tuple(module for ep in found if (module := _load(ep)) is not None)


def _load(entry_point) -> ModuleType | None:
    try:
        return entry_point.load()
    except ModuleNotFoundError as exc:
        package = entry_point.value.split(":")[0].split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] == package:
            return None  # the plugin's own package is not installed
        raise


def command_modules() -> list[str]:
    """Return the CLI command modules the plugins add."""
    return [name for plugin in plugins() for name in getattr(plugin, "COMMAND_MODULES", ())]


def generate_dataset(out, images: int, locations: int, **options) -> dict:
    """Write a synthetic dataset through the plugin that offers one.

    Args:
        out: output folder.
        images: number of frames.
        locations: number of camera locations.
        **options: ``seed``, ``width``, ``height`` (see the workshop's ``generate_dataset``).

    Returns:
        The generator's summary.

    Raises:
        DeerError: no installed plugin generates datasets.
    """
    for plugin in plugins():
        generate = getattr(plugin, "generate_dataset", None)
        if generate is not None:
            return generate(out, images=images, locations=locations, **options)
    raise DeerError(
        "synthetic data needs the workshop (deer_workshop), which is not installed: "
        "install deer_pipeline from its repository (`make install`) or set DEER_IMAGE_ROOT"
    )
