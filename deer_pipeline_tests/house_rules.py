"""Checks that read the code (its syntax tree, not its behaviour) for docs/architecture.md.

Each checker takes a package folder and returns the offences it finds, as
``{"relative/path.py": [what, ...]}``; ``test_house_rules.py`` asserts the product has none and
shows each checker catching a planted offence.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

Offences = dict[str, list[str]]

ENVIRONMENT_OWNER = "config.py"
SHIM_FOLDER = "compat"
CHECK_MAKERS = {"asset_check", "multi_asset_check", "AssetCheckSpec"}
DAGSTER_FREE = ("review_app", "ingest", "vision", "reid", "exports", "db", "bench")
"""Plain libraries: no Dagster import (docs/architecture.md, Layers)."""


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _scan(root: Path, check: Callable[[Path, ast.AST], list[str]]) -> Offences:
    found: Offences = {}
    for path in sorted(root.rglob("*.py")):
        offences = check(path.relative_to(root), _tree(path))
        if offences:
            found[str(path.relative_to(root))] = offences
    return found


def environment_users(root: Path) -> Offences:
    """Modules other than ``config.py`` that read or write ``os.environ`` / ``os.getenv``."""

    def check(rel: Path, tree: ast.AST) -> list[str]:
        if rel.as_posix() == ENVIRONMENT_OWNER:
            return []
        hits = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "putenv"}:
                hits.append(f"line {node.lineno}: os.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                names = {a.name for a in node.names} & {"environ", "getenv", "putenv"}
                hits += [f"line {node.lineno}: from os import {n}" for n in sorted(names)]
        return hits

    return _scan(root, check)


def private_imports(root: Path) -> Offences:
    """Modules outside ``compat/`` that import another package's private module or name."""

    def check(rel: Path, tree: ast.AST) -> list[str]:
        if rel.parts[0] == SHIM_FOLDER:
            return []
        own = root.name
        return sorted(
            {
                name
                for name in _imports(tree)
                if not name.startswith(own + ".")
                and name != own
                and any(part.startswith("_") and part != "__future__" for part in name.split("."))
            }
        )

    return _scan(root, check)


def process_wide_patches(root: Path) -> Offences:
    """Modules outside ``compat/`` that install warning filters or assign into another module."""

    def check(rel: Path, tree: ast.AST) -> list[str]:
        if rel.parts[0] == SHIM_FOLDER:
            return []
        hits = []
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"filterwarnings", "simplefilter"}
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "warnings"
            ):
                hits.append(f"line {node.lineno}: warnings.{node.func.attr}")
            if isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id in {"torch", "ultralytics", "dagster", "dg", "Image"}
                    ):
                        hits.append(f"line {node.lineno}: {target.value.id}.{target.attr} = ...")
        return hits

    return _scan(root, check)


def dagster_in_libraries(root: Path) -> Offences:
    """Plain-library modules (``DAGSTER_FREE`` folders) that import Dagster."""

    def check(rel: Path, tree: ast.AST) -> list[str]:
        if rel.parts[0] not in DAGSTER_FREE:
            return []
        return sorted(
            {n for n in _imports(tree) if n.split(".")[0] in {"dagster", "dagster_postgres"}}
        )

    return _scan(root, check)


def workshop_imports(root: Path) -> Offences:
    """Runtime modules that import the workshop."""

    def check(rel: Path, tree: ast.AST) -> list[str]:
        return sorted({n for n in _imports(tree) if n.split(".")[0] == "deer_workshop"})

    return _scan(root, check)


def commands_outside_commands(root: Path) -> Offences:
    """Modules outside ``commands/`` (and ``cli.py``) that define command-line parsers."""

    def check(rel: Path, tree: ast.AST) -> list[str]:
        if rel.parts[0] == "commands" or rel.as_posix() == "cli.py":
            return []
        return [
            f"line {node.lineno}: .{node.func.attr}(...)"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"add_parser", "add_subparsers"}
        ]

    return _scan(root, check)


def hand_written_checks(root: Path) -> Offences:
    """Asset checks defined outside the factory (``assets/quality_checks.py``)."""

    def check(rel: Path, tree: ast.AST) -> list[str]:
        if rel.as_posix() == "assets/quality_checks.py":
            return []
        return [
            f"line {node.lineno}: asset_check"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute | ast.Name)
            and getattr(node, "attr", getattr(node, "id", None))
            in {"asset_check", "AssetCheckSpec"}
        ]

    return _scan(root, check)
