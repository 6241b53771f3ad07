"""The ``deer-pipeline`` command line (see the contract in README.md).

Sub-commands live in small modules that register themselves here; each is imported when the CLI
starts but imports its heavy dependencies (Dagster, torch) only when it runs, so the Dagster-free
commands (``demo-data``, ``train-detector``, added by the workshop plugin, see ``plugins.py``)
work on a machine without Dagster or PostgreSQL.
A ``DeerError`` is printed as one line with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from deer_pipeline.errors import DeerError
from deer_pipeline.plugins import command_modules

COMMAND_MODULES = [
    "deer_pipeline.commands.db",
    "deer_pipeline.commands.dev",
    "deer_pipeline.commands.run",
    "deer_pipeline.commands.bench",
    "deer_pipeline.commands.deer",
    "deer_pipeline.commands.exports",
    "deer_pipeline.commands.report",
    "deer_pipeline.commands.imports",
    "deer_pipeline.commands.review",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="deer-pipeline",
        description="Trail-camera photos to detections, embeddings and individual deer.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [*COMMAND_MODULES, *command_modules()]:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but needs something missing: a real error
                raise
            continue  # a command module that is not part of this install
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DeerError as exc:
        print(f"deer-pipeline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
