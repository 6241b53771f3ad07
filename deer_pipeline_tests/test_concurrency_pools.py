"""The `gpu` pool under a real dagster-daemon: GPU steps never overlap, a crash frees its slot.

A Dagster instance in a temporary DAGSTER_HOME with the repository's own ``dagster.yaml``
(QueuedRunCoordinator, ``gpu`` pool limit 1, run monitoring) stores its runs in a fresh database
on the session's embedded PostgreSQL. ``dagster-daemon run`` dequeues the runs submitted here and
launches them through its code server (``pool_location``, the pipeline's shape with sleeps). The
proof is read back from Dagster's own records: STEP_START / STEP_SUCCESS timestamps per step, run
statuses, and the pool's claimed slots.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from deer_pipeline_tests import pool_location as loc

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCATIONS = ("north-ridge", "creek-crossing", "salt-lick")
RUN_TIMEOUT_S = 120

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def daemon_instance(db_urls, tmp_path_factory):
    """A DagsterInstance whose queue is served by a ``dagster-daemon run`` subprocess."""
    import dagster as dg

    from deer_pipeline.commands.dev import stop_process_tree
    from deer_pipeline.compat.dagster import initialize_pools
    from deer_pipeline.db.connect import connect, sqlalchemy_url, with_database
    from deer_pipeline.pools import POOLS

    name = f"dagster_pools_{uuid.uuid4().hex[:8]}"
    admin = connect(db_urls.dagster, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    home = tmp_path_factory.mktemp("pool_dagster_home")
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    url = sqlalchemy_url(with_database(db_urls.dagster, name))
    config["storage"]["custom"]["config"] = {"postgres_url": url}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = home / "workspace.yaml"
    target = {
        "module_name": loc.__name__,
        "working_directory": str(PROJECT_ROOT),
        "location_name": loc.LOCATION,
    }
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": target}]}))
    env = {"DAGSTER_HOME": str(home)}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    with dg.DagsterInstance.get() as fresh:  # as deer-pipeline dev does before the daemon starts
        assert initialize_pools(fresh, POOLS) == list(POOLS)
    log = (home / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    instance = dg.DagsterInstance.get()
    try:
        yield instance, workspace
    finally:
        stop_process_tree(daemon, grace_s=5)
        log.close()
        instance.dispose()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def submit(daemon_instance):
    """A function that queues runs of the test job, one per partition, as the UI would.

    Every run is created first and then submitted in one go, so that they reach the queue within
    one dequeue interval of the daemon.
    """
    from dagster._cli.job import _create_run
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    instance, workspace = daemon_instance
    instance.add_dynamic_partitions("camera_locations", list(LOCATIONS))
    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace)])) as process:

        def _submit(*runs: tuple[str, dict[str, str]]) -> list[str]:
            request = process.create_request_context()
            code_location = request.get_code_location(loc.LOCATION)
            (repo,) = code_location.get_repositories().values()
            created = [
                _create_run(
                    instance=instance,
                    code_location=code_location,
                    remote_repo=repo,
                    remote_job=repo.get_full_job(loc.JOB),
                    run_config={},
                    tags={"dagster/partition": partition, **tags},
                    op_selection=None,
                    run_id=None,
                )
                for partition, tags in runs
            ]
            return [instance.submit_run(run.run_id, request).run_id for run in created]

        yield _submit


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _step_intervals(instance, run_id: str) -> dict[str, tuple[float, float | None]]:
    """Map step key -> (STEP_START, STEP_SUCCESS or None) timestamps from the run's event log."""
    from dagster import DagsterEventType

    start, end = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            start[event.step_key] = entry.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            end[event.step_key] = entry.timestamp
    return {key: (t0, end.get(key)) for key, t0 in start.items()}


def _finished(instance, run_ids):
    runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
    return all(run.is_finished for run in runs) and runs


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def test_gpu_steps_never_overlap_while_ingest_does(daemon_instance, submit):
    instance, _ = daemon_instance
    run_ids = submit(*[(partition, {}) for partition in LOCATIONS])
    runs = _wait(lambda: _finished(instance, run_ids), RUN_TIMEOUT_S, "three runs to finish")
    assert [run.status.value for run in runs] == ["SUCCESS"] * 3
    steps = [_step_intervals(instance, run_id) for run_id in run_ids]
    gpu = sorted(s["infer"] for s in steps)
    ingest = sorted(s["ingest"] for s in steps)
    identify = sorted(s["identify"] for s in steps)
    for intervals in (gpu, identify):
        for a, b in zip(intervals, intervals[1:], strict=False):
            assert _overlap(a, b) < 0, f"pool steps overlapped: {a} {b}"
    ingest_overlaps = [
        _overlap(a, b) for i, a in enumerate(ingest) for b in ingest[i + 1 :] if _overlap(a, b) > 0
    ]
    assert ingest_overlaps, f"no two ingest steps ran at once: {ingest}"
    origin = min(t for t, _ in ingest)
    print(
        "\ningest steps (s from first start):",
        [(round(a - origin, 2), round(b - origin, 2)) for a, b in ingest],
        "\ngpu steps:",
        [(round(a - origin, 2), round(b - origin, 2)) for a, b in gpu],
        f"\nlargest ingest overlap {max(ingest_overlaps):.2f} s; smallest gap between gpu steps "
        f"{min(-_overlap(a, b) for a, b in zip(gpu, gpu[1:], strict=False)):.2f} s",
    )


def _gpu_slots(instance):
    from deer_pipeline.pools import GPU_POOL

    return instance.event_log_storage.get_concurrency_info(GPU_POOL)


def _run_worker_pid(instance, run_id: str) -> int | None:
    from dagster import DagsterEventType

    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data
        if data and "pid" in data.metadata:
            return int(data.metadata["pid"].value)
    return None


def test_killed_run_frees_its_gpu_slot(daemon_instance, submit):
    instance, _ = daemon_instance
    settings = instance.run_monitoring_settings
    bound_s = settings["free_slots_after_run_end_seconds"] + 2 * settings["poll_interval_seconds"]
    holder, waiter = submit(
        (LOCATIONS[0], {loc.HOLD_TAG: "600"}),
        (LOCATIONS[1], {loc.INGEST_TAG: str(loc.INGEST_S + 10)}),  # reaches the pool second
    )
    _wait(lambda: "infer" in _step_intervals(instance, holder), RUN_TIMEOUT_S, "the GPU step")
    _wait(
        lambda: waiter in _gpu_slots(instance).pending_run_ids,
        RUN_TIMEOUT_S,
        "a second run to queue on the gpu pool",
    )
    assert _gpu_slots(instance).active_run_ids == {holder}
    pid = _run_worker_pid(instance, holder)
    assert pid, "no run worker pid in the holder's engine events"
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    _wait(lambda: instance.get_run_by_id(holder).is_finished, bound_s, "the killed run to fail")
    failed_s = time.time() - killed_at
    _wait(lambda: holder not in _gpu_slots(instance).active_run_ids, bound_s + 15, "slot freed")
    freed_s = time.time() - killed_at
    (waiter_run,) = _wait(lambda: _finished(instance, [waiter]), RUN_TIMEOUT_S, "the waiting run")
    assert instance.get_run_by_id(holder).status.value == "FAILURE"
    assert waiter_run.status.value == "SUCCESS"
    waited_s = _step_intervals(instance, waiter)["infer"][0] - killed_at
    assert freed_s <= bound_s, f"slot freed after {freed_s:.1f} s, configured bound {bound_s} s"
    print(
        f"\nSIGKILL of run worker {pid}: run FAILURE after {failed_s:.1f} s, gpu slot free after "
        f"{freed_s:.1f} s (bound {bound_s} s), waiting run's GPU step started {waited_s:.1f} s "
        "after the kill"
    )


def test_upstream_pool_limit_race_is_still_there(daemon_instance):
    """Why ``compat.dagster.initialize_pools`` exists: creating an existing pool's limit again
    fails on PostgreSQL (INSERT, unique violation, then UPDATE in the aborted transaction), as the
    loser of two racing runs does. When this stops raising, upstream fixed it: drop the shim."""
    import sqlalchemy.exc

    from deer_pipeline.pools import GPU_POOL

    instance, _ = daemon_instance
    with pytest.raises(sqlalchemy.exc.InternalError, match="current transaction is aborted"):
        instance.event_log_storage.initialize_concurrency_limit_to_default(GPU_POOL)
