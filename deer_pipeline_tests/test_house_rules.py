"""The rules of docs/architecture.md, read from the code; each checker shown catching a plant."""

from __future__ import annotations

from pathlib import Path

import pytest

import deer_pipeline
from deer_pipeline_tests import house_rules

RUNTIME = Path(deer_pipeline.__file__).parent

CHECKERS = {
    "environment": house_rules.environment_users,
    "private imports": house_rules.private_imports,
    "process-wide patches": house_rules.process_wide_patches,
    "dagster in libraries": house_rules.dagster_in_libraries,
    "workshop imports": house_rules.workshop_imports,
    "commands outside commands/": house_rules.commands_outside_commands,
    "asset checks by hand": house_rules.hand_written_checks,
}

PLANTS = {
    "environment": ("exports/leak.py", "import os\nHOME = os.environ.get('DEER_HOME')\n"),
    "private imports": ("instance2.py", "from dagster._serdes import ConfigurableClassData\n"),
    "process-wide patches": (
        "assets/noisy.py",
        "import warnings\nwarnings.filterwarnings('ignore')\n",
    ),
    "dagster in libraries": ("review_app/observe.py", "import dagster as dg\n"),
    "workshop imports": ("reid/uses_world.py", "from deer_workshop.synthetic import world\n"),
    "asset checks by hand": (
        "assets/more_checks.py",
        "import dagster as dg\n\n@dg.asset_check(asset='raw_images')\ndef c():\n    pass\n",
    ),
    "commands outside commands/": (
        "exports/commands.py",
        "def register(subparsers):\n    subparsers.add_parser('export')\n",
    ),
}


@pytest.mark.parametrize("rule", sorted(CHECKERS))
def test_the_product_keeps_the_rule(rule):
    assert CHECKERS[rule](RUNTIME) == {}


@pytest.mark.parametrize("rule", sorted(CHECKERS))
def test_the_rule_catches_a_planted_offence(rule, tmp_path):
    root = tmp_path / "deer_pipeline"
    (root / "compat").mkdir(parents=True)
    (root / "config.py").write_text("import os\nHOME = os.environ.get('DEER_HOME')\n")
    (root / "compat" / "shim.py").write_text(
        "import warnings\nfrom dagster._serdes import X\nwarnings.filterwarnings('ignore')\n"
    )
    assert CHECKERS[rule](root) == {}, "the owners themselves are allowed"
    rel, text = PLANTS[rule]
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
    found = CHECKERS[rule](root)
    assert list(found) == [rel] and found[rel]
