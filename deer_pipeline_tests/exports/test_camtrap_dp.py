"""Camtrap DP export, validated offline against the standard's own 1.0.2 schemas and profile."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import frictionless
import jsonschema
import pytest
import referencing
from frictionless import Package

from deer_pipeline.cli import main
from deer_pipeline.db.connect import connect
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.review import correct_detection
from deer_pipeline_tests.reid.builders import Scene, animal, view

# Same path logic as SHARED_DATA in conftest.py: <repo>/../shared/data/camtrap-dp-1.0.2
CAMTRAP = Path(__file__).resolve().parents[3] / "shared" / "data" / "camtrap-dp-1.0.2"
TABLES = ("deployments", "media", "observations")


@pytest.fixture(scope="module")
def standard() -> Path:
    if not (CAMTRAP / "camtrap-dp-profile.json").is_file():
        pytest.fail(f"Camtrap DP 1.0.2 files missing at {CAMTRAP}")
    return CAMTRAP


@pytest.fixture
def scene(clean_db):
    """Two locations; at Creek a doe and a buck in a burst, a fawn later; one buck box corrected
    to doe by a person, one box marked not-deer; at Ridge one doe."""
    conn = connect(clean_db.data)
    creek = Scene("Creek")
    creek.burst(
        [
            [
                ("doe", (128, 72, 384, 360), view(animal(1), 0.2, k)),
                ("buck", (640, 360, 1280, 720), view(animal(2), 0.2, 5 + k)),
            ]
            for k in range(3)
        ]
    )
    creek.burst([[("fawn", (0, 0, 64, 36), view(animal(3), 0.2, 9))], []], minutes=60)
    creek.burst([[("buck", (10, 10, 200, 200), view(animal(4), 0.2, 11))]], minutes=120)
    ids = creek.write(conn)
    ridge = Scene("Ridge")
    ridge.burst([[("doe", (100, 100, 300, 300), view(animal(5), 0.2, 12))]])
    ids += ridge.write(conn)
    for key in ("Creek", "Ridge"):
        identify_location(conn, key, MatchConfig(threshold=0.7))
    correct_detection(conn, ids[5], "doe")  # the third frame's buck: a person says doe
    correct_detection(conn, ids[7], "not-deer")  # the later buck box is not a deer
    yield conn, ids
    conn.close()


def _offline_registry(standard: Path) -> referencing.Registry:
    """Resolve the profile's remote $refs offline: GeoJSON from frictionless' bundled copy; the
    generic Data Package schema (not shipped here) as an empty schema (frictionless validates
    the package itself below)."""
    geojson = Path(frictionless.__file__).parent / "assets" / "profiles" / "geojson.json"
    resources = {
        "http://json.schemastore.org/geojson.json": json.loads(geojson.read_text()),
        "https://specs.frictionlessdata.io/schemas/data-package.json": {},
    }
    return referencing.Registry().with_resources(
        (url, referencing.Resource.from_contents(body, referencing.jsonschema.DRAFT4))
        for url, body in resources.items()
    )


def validate_package(out: Path, standard: Path) -> dict:
    """Validate datapackage.json against the profile and every table (and the foreign keys
    between them) against the local table schemas; return the descriptor."""
    descriptor = json.loads((out / "datapackage.json").read_text())
    profile = json.loads((standard / "camtrap-dp-profile.json").read_text())
    validator = jsonschema.Draft4Validator(
        profile,
        registry=_offline_registry(standard),
        format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER,
    )
    errors = [e.message for e in validator.iter_errors(descriptor)]
    assert errors == []
    local = json.loads(json.dumps(descriptor))
    for res in local["resources"]:
        if res["name"] in TABLES:  # the standard's own table schemas, read locally
            res["schema"] = json.loads((standard / f"{res['name']}-table-schema.json").read_text())
    local["profile"] = "data-package"  # the Camtrap DP profile was checked above, offline
    report = Package(local, basepath=str(out)).validate()
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    assert [task.name for task in report.tasks][:3] == list(TABLES)
    return descriptor


def rows(out: Path, name: str) -> list[dict]:
    with (out / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_standards_example_passes_the_same_validation(standard):
    validate_package(standard / "example", standard)


def test_export_validates_and_carries_individuals(scene, standard, tmp_path, capsys):
    conn, ids = scene
    out = tmp_path / "pkg"
    coords = tmp_path / "coords.json"
    coords.write_text(json.dumps({"Creek": [30.25, -97.75]}))
    args = ["export", "camtrap-dp", str(out), "--timezone", "America/Chicago"]
    assert main([*args, "--coordinates", str(coords)]) == 0
    printed = capsys.readouterr().out
    with conn.cursor() as cur:
        cur.execute("SELECT detection_id, deer_id FROM sightings")
        sighting = dict(cur.fetchall())
    every_deer = {f"deer-{d}" for d in sighting.values()}
    assert len(every_deer) >= 5
    assert f"2 deployments, 7 media, 8 observations of {len(every_deer)} individuals" in printed
    assert "1 classified by a person" in printed and "1 deployments have no coordinates" in printed
    descriptor = validate_package(out, standard)
    assert descriptor["taxonomic"] == [
        {"scientificName": "Odocoileus virginianus", "taxonRank": "species"}
    ]
    assert descriptor["temporal"] == {"start": "2024-09-01", "end": "2024-09-01"}

    deployments = {d["deploymentID"]: d for d in rows(out, "deployments")}
    assert (deployments["Creek"]["latitude"], deployments["Creek"]["longitude"]) == (
        "30.25",
        "-97.75",
    )
    assert deployments["Creek"]["deploymentStart"] == "2024-09-01T06:00:00-05:00"
    assert deployments["Creek"]["deploymentEnd"] == "2024-09-01T08:00:00-05:00"
    assert deployments["Ridge"]["deploymentComments"].startswith("coordinates not configured")
    media = {m["mediaID"]: m for m in rows(out, "media")}
    assert len(media) == 7 and {m["filePath"][:6] for m in media.values()} == {"Creek/", "Ridge/"}
    assert json.loads(next(iter(media.values()))["exifData"])["ImageWidth"] == 1280

    obs = rows(out, "observations")
    by_id = {o["observationID"]: o for o in obs if o["observationLevel"] == "media"}
    assert sorted(int(k) for k in by_id) == sorted(ids[:7] + ids[8:])  # not-deer is left out
    assert {o["individualID"] for o in by_id.values()} == every_deer
    for det_id, o in by_id.items():
        assert o["individualID"] == f"deer-{sighting[int(det_id)]}"
    first_doe = by_id[str(ids[0])]
    assert (first_doe["sex"], first_doe["lifeStage"]) == ("female", "adult")
    assert first_doe["scientificName"] == "Odocoileus virginianus"
    assert [first_doe[k] for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == [
        "0.1",
        "0.1",
        "0.2",
        "0.4",
    ]
    assert first_doe["eventStart"] == "2024-09-01T06:00:00-05:00"
    assert (first_doe["classificationMethod"], first_doe["classificationProbability"]) == (
        "machine",
        "0.9",
    )
    buck = by_id[str(ids[1])]
    assert (buck["sex"], buck["lifeStage"]) == ("male", "adult")
    fawn = by_id[str(ids[6])]
    assert (fawn["sex"], fawn["lifeStage"]) == ("", "juvenile")
    corrected = by_id[str(ids[5])]
    assert (corrected["classificationMethod"], corrected["sex"]) == ("human", "female")
    assert [o["observationID"] for o in by_id.values() if o["classificationMethod"] == "human"] == [
        str(ids[5])
    ]
    events = [o for o in obs if o["observationLevel"] == "event"]
    assert {o["individualID"] for o in events} == every_deer
    assert all(o["mediaID"] == "" and o["count"] == "1" for o in events)


def test_unknown_time_zone_is_one_line(scene, tmp_path, capsys):
    assert main(["export", "camtrap-dp", str(tmp_path / "p"), "--timezone", "Mars/Olympus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown time zone 'Mars/Olympus'" in err[0]
    assert not (tmp_path / "p").exists()
