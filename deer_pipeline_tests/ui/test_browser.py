"""The Dagster UI as a user sees it, in headless Chromium (Debian's chromium + chromedriver).

Starts ``deer-pipeline dev``, checks the asset graph shows the assets, their asset checks and
the location partitions, launches a materialization through Dagster's GraphQL API, waits for it
to succeed, takes a screenshot and stops everything with no orphan processes.
"""

from __future__ import annotations

import time

import pytest
import requests
from selenium.webdriver.support.ui import WebDriverWait

from deer_pipeline.ingest.locations import discover_locations
from deer_pipeline_tests.chromium import headless_chromium

ASSETS = ["raw_images", "detections", "embeddings", "deer_identities", "benchmark"]
CHECKS = {
    "raw_images": ["failed_files_share", "capture_time_share"],
    "detections": ["boxes_inside_image", "no_duplicate_deer_boxes"],
    "embeddings": ["one_embedding_per_detection", "unit_norm"],
    "deer_identities": ["no_same_frame_merge", "no_confident_sex_conflict"],
    "camtrap_dp": ["every_deer_is_an_individual"],
    "herd_survey": ["counts_mostly_reviewed"],
}


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium(1600, 1000)
    yield driver
    driver.quit()


LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}
"""


def _graphql(url, query, variables):
    response = requests.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    response.raise_for_status()
    return response.json()["data"]


def _launch_backfill(url, keys):
    params = {
        "assetSelection": [{"path": [name]} for name in ASSETS[:4]],
        "partitionNames": keys,
        "title": "every location",
    }
    result = _graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def _wait_backfill(url, backfill_id, timeout_s=400):
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = _graphql(url, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"][
            "status"
        ]
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            return status
        time.sleep(3)
    return status


def _wait_for_texts(driver, texts, timeout=90):
    WebDriverWait(driver, timeout).until(
        lambda d: all(t in d.find_element("tag name", "body").text for t in texts)
    )


def test_ui_graph_partitions_launch_and_clean_stop(dev_server, browser, ui_image_root, artifacts):
    keys = [loc.key for loc in discover_locations(ui_image_root)]
    # the asset graph of each group: the four partitioned assets, then the benchmark
    browser.get(f"{dev_server.url}/locations/deer_pipeline/asset-groups/pipeline")
    _wait_for_texts(browser, ASSETS[:4])
    time.sleep(1)
    assert browser.save_screenshot(str(artifacts / "dagster-ui-asset-graph.png"))
    browser.get(f"{dev_server.url}/locations/deer_pipeline/asset-groups/benchmarks")
    _wait_for_texts(browser, ASSETS[4:])

    # the sensor registers one partition per location folder
    browser.get(f"{dev_server.url}/assets/raw_images?view=partitions")
    _wait_for_texts(browser, keys, timeout=120)

    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    client = DagsterGraphQLClient("127.0.0.1", port_number=dev_server.port)
    run_id = client.submit_job_execution(
        "deer_pipeline_job",
        repository_location_name="deer_pipeline",
        tags={"dagster/partition": keys[0]},
        asset_selection=[["raw_images"]],
    )
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id).value
        except DagsterGraphQLClientError:
            status = None
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS", dev_server.log_path.read_text()[-3000:]

    # a backfill over every location, launched the way the UI's "Materialize all" launches it
    backfill = _launch_backfill(dev_server.url, keys)
    status = _wait_backfill(dev_server.url, backfill)
    assert status == "COMPLETED_SUCCESS", dev_server.log_path.read_text()[-3000:]
    browser.get(f"{dev_server.url}/runs/b/{backfill}?tab=partitions")
    _wait_for_texts(browser, keys)
    assert browser.save_screenshot(str(artifacts / "dagster-ui-backfill.png"))

    # every pipeline asset's checks, on the asset's Checks tab
    for asset, names in CHECKS.items():
        browser.get(f"{dev_server.url}/assets/{asset}?view=checks")
        _wait_for_texts(browser, names)
    assert browser.save_screenshot(str(artifacts / "dagster-ui-checks.png"))

    browser.get(f"{dev_server.url}/runs/{run_id}")
    _wait_for_texts(browser, ["raw_images"])
    time.sleep(2)  # let the run page finish rendering
    shot = artifacts / "dagster-ui-run.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    leftovers = dev_server.stop()
    assert leftovers == [], [p.info if hasattr(p, "info") else p for p in leftovers]
