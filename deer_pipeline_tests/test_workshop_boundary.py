"""The runtime package never imports the workshop; it reaches it only as a plugin."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import deer_pipeline
from deer_pipeline import plugins
from deer_pipeline.errors import DeerError

RUNTIME = Path(deer_pipeline.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_runtime_module_names_the_workshop():
    offenders = {}
    for path in sorted(RUNTIME.rglob("*.py")):
        workshop = sorted(n for n in _imported_modules(path) if n.startswith("deer_workshop"))
        if workshop:
            offenders[str(path.relative_to(RUNTIME))] = workshop
    assert offenders == {}


def test_importing_the_whole_runtime_loads_no_workshop_module():
    code = (
        "import importlib, pkgutil, sys, deer_pipeline\n"
        "for m in pkgutil.walk_packages(deer_pipeline.__path__, 'deer_pipeline.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('deer_workshop')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_workshop_is_registered_as_a_plugin():
    assert "deer_workshop.synthetic.commands" in plugins.command_modules()


def test_without_the_workshop_synthetic_data_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(plugins, "plugins", lambda: ())
    with pytest.raises(DeerError, match="needs the workshop"):
        plugins.generate_dataset(tmp_path, images=1, locations=1)
    assert list(tmp_path.iterdir()) == []


def test_a_registered_plugin_that_is_not_shipped_is_left_out(monkeypatch):
    from importlib.metadata import EntryPoint

    shipped = EntryPoint("workshop", "deer_workshop.plugin", plugins.GROUP)
    missing = EntryPoint("absent", "deer_no_such_package.plugin", plugins.GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [missing, shipped])
    plugins.plugins.cache_clear()
    try:
        assert [m.__name__ for m in plugins.plugins()] == ["deer_workshop.plugin"]
    finally:
        plugins.plugins.cache_clear()
