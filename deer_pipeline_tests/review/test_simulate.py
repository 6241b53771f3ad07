"""``review simulate``: the ground-truth reviewer answers the herd's queue through the CLI."""

from __future__ import annotations

import json

from deer_pipeline.cli import main


def test_simulate_merges_the_fragments_then_answers_the_rest_no(herd, capsys):
    assert main(["review", "simulate", "--truth", str(herd["truth"]), "--max-decisions", "1"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (first["decisions"], first["merges"], first["deer_before"], first["deer_after"]) == (
        1,
        1,
        5,
        4,
    )
    assert main(["review", "simulate", "--truth", str(herd["truth"])]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # no floor: once the fragments are merged, every remaining candidate is asked and answered
    # "no" (the three pairs of animals; per deer, one of its two visits and its least typical
    # box) until none is left
    keys = ("merges", "not_same", "splits", "deer_after", "stopped")
    assert {k: result[k] for k in keys} == {
        "merges": 1,
        "not_same": 3,
        "splits": 0,
        "deer_after": 3,
        "stopped": "empty",
    }
    assert 3 <= result["kept"] <= 5 and result["decisions"] == 4 + result["kept"]
    assert result["bcubed_precision"] == 1.0 and result["bcubed_recall"] == 1.0
    assert main(["review", "simulate", "--truth", str(herd["root"] / "missing.json")]) == 2
