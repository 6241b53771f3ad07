from datetime import datetime, timedelta

from deer_pipeline.ingest.bursts import assign_bursts

T0 = datetime(2024, 5, 1, 6, 0, 0)


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def test_consecutive_frames_within_the_gap_chain_into_one_burst():
    frames = [(10, at(0), "cam"), (11, at(1), "cam"), (12, at(6), "cam"), (13, at(20), "cam")]
    assert assign_bursts(frames, gap_s=5) == {10: 10, 11: 10, 12: 10, 13: 13}


def test_burst_id_is_the_earliest_frame_whatever_the_ids():
    frames = [(7, at(2), "cam"), (3, at(1), "cam"), (9, at(0), "cam"), (5, at(0), "cam")]
    assert assign_bursts(frames, gap_s=5) == {5: 5, 9: 5, 3: 5, 7: 5}


def test_gap_is_configurable_and_inclusive():
    frames = [(1, at(0), None), (2, at(5), None), (3, at(10.5), None)]
    assert assign_bursts(frames, gap_s=5) == {1: 1, 2: 1, 3: 3}
    assert assign_bursts(frames, gap_s=1) == {1: 1, 2: 2, 3: 3}


def test_two_cameras_are_never_chained():
    frames = [(1, at(0), "a"), (2, at(1), "b"), (3, at(2), "a")]
    assert assign_bursts(frames) == {1: 1, 2: 2, 3: 1}
