"""Applying one reviewer decision: the single call behind the page's keys and ``review simulate``.

A decision names what the person saw (the deer, or a detection, and the state token of those deer)
and what they answered; it is applied with the review actions of ``deer_pipeline.reid.review``
under the identity lock with a bounded wait, so a decision is either recorded, or refused with a
clear reason (``DecisionConflict``: the deer changed since; ``IdentityBusy``: a run holds the
lock), never lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.review import (
    ReviewError,
    correct_detection,
    keep_sightings,
    merge_deer,
    not_a_deer,
    not_same,
    split_sightings,
    undo_last,
)
from deer_pipeline.review_app.queue import ProposalQueue
from deer_pipeline.vocabulary import CORRECTION_CLASSES

ANSWERS = ("merge", "not_same", "not_deer", "class", "split", "keep", "undo")
LOCK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Decision:
    """What a person answered.

    Attributes:
        answer: ``merge`` or ``not_same`` (a pair), ``not_deer`` (deer ``left`` is no deer
            at all), ``class`` (a detection), ``split`` (``detections`` of deer ``left`` to a
            new deer, or to deer ``right``), ``keep`` (stray sightings ``detections`` belong
            to their deer ``left``), or ``undo``.
        left: a deer of the pair (or the detection's deer, or the deer split).
        right: the other deer of the pair (or the deer a split moves sightings to).
        detection: the detection whose class is decided.
        class_name: the class decided (one of ``CORRECTION_CLASSES``); with ``merge``, the
            class of the animal (corrects the detections of both deer that say otherwise).
        expect: the ``deer_state`` token of the deer when the page showed them.
        detections: the sightings a split moves (or a keep keeps).
    """

    answer: str
    left: int | None = None
    right: int | None = None
    detection: int | None = None
    class_name: str | None = None
    expect: str | None = None
    detections: tuple[int, ...] = ()


def _keep_first(cur, a: int, b: int) -> tuple[int, int]:
    """The deer with more sightings stays (its id is the one people have seen most)."""
    cur.execute("SELECT id, n_sightings FROM deer WHERE id IN (%s, %s)", (a, b))
    sizes = dict(cur.fetchall())
    return (a, b) if (sizes.get(a, 0), -a) >= (sizes.get(b, 0), -b) else (b, a)


def apply_decision(
    conn,
    decision: Decision,
    reviewer: str,
    match: MatchConfig | None = None,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> dict:
    """Record one decision (merge, not the same, a class, undo) and return what happened.

    Args:
        conn: a psycopg2 connection (committed here).
        decision: the answer and what it refers to.
        reviewer: who decided.
        match: matching settings for a class correction that re-identifies a detection.
        lock_timeout_s: how long to wait for an identity run holding the lock.

    Returns:
        The review action's result, with ``action``: ``merge``, ``not_same``, ``not_deer``,
        ``split``, ``keep``, ``correct``, ``undo``.

    Raises:
        ReviewError: the decision is malformed or refused (``DecisionConflict``,
            ``IdentityBusy`` among them); nothing was recorded.
    """
    opts = {"reviewer": reviewer, "lock_timeout_s": lock_timeout_s}
    if decision.answer == "undo":
        return {"action": "undo", **undo_last(conn, **opts)}
    if decision.answer in ("merge", "not_same"):
        if decision.left is None or decision.right is None:
            raise ReviewError("a pair decision names two deer")
        if decision.answer == "not_same":
            result = not_same(conn, decision.left, decision.right, expect=decision.expect, **opts)
            return {"action": "not_same", **result}
        with conn.cursor() as cur:
            keep, other = _keep_first(cur, decision.left, decision.right)
        conn.rollback()
        result = merge_deer(
            conn,
            keep,
            other,
            as_class=decision.class_name,
            duplicates=True,
            expect=decision.expect,
            **opts,
        )
        return {"action": "merge", **result}
    if decision.answer == "not_deer":
        if decision.left is None:
            raise ReviewError("say which deer is not a deer")
        result = not_a_deer(conn, decision.left, expect=decision.expect, **opts)
        return {"action": "not_deer", **result}
    if decision.answer == "split":
        result = split_sightings(
            conn,
            list(decision.detections),
            decision.right,
            source=decision.left,
            expect=decision.expect,
            **opts,
        )
        return {"action": "split", **result}
    if decision.answer == "keep":
        result = keep_sightings(conn, decision.detections, expect=decision.expect, **opts)
        return {"action": "keep", **result}
    if decision.answer == "class":
        if decision.detection is None or decision.class_name not in CORRECTION_CLASSES:
            raise ReviewError(f"a class decision names a detection and one of {CORRECTION_CLASSES}")
        result = correct_detection(
            conn, decision.detection, decision.class_name, match, expect=decision.expect, **opts
        )
        return {"action": "correct", **result}
    raise ReviewError(f"unknown answer {decision.answer!r}; one of {', '.join(ANSWERS)}")


def _example(cur, queue: ProposalQueue, decision: Decision):
    """(model version, features, label) the decision teaches the pair model, or None."""
    if decision.answer in ("merge", "not_same") and None not in (decision.left, decision.right):
        found = queue.pair_example(cur, decision.left, decision.right)
        label = 1 if decision.answer == "merge" else 0
    elif decision.answer == "split" and decision.left is not None and decision.detections:
        found = queue.split_example(cur, decision.left, decision.detections)
        label = 0
    elif decision.answer == "keep" and decision.left is not None and decision.detections:
        found = queue.split_example(cur, decision.left, decision.detections)
        label = 1
    else:
        return None
    return None if found is None else (*found, label)


def _example_key(result: dict) -> str | None:
    action = result["action"]
    if action == "not_same":
        return f"not_same:{result['not_same']}"
    if action in ("merge", "split", "keep"):
        return f"{action}:{result['log']}"
    return None


def _touched(result: dict) -> set:
    keys = ("deer", "removed", "left", "right", "from", "from_deer", "to_deer")
    out = set()
    for value in (result.get(k) for k in keys):
        out.update(value if isinstance(value, list) else [value])
    return {d for d in out if isinstance(d, int)}


def decide(
    conn,
    queue: ProposalQueue,
    decision: Decision,
    reviewer: str,
    match: MatchConfig | None = None,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> dict:
    """Record one decision and teach the pair model with it (the page's and simulate's call).

    The pair's (or split's) features are taken as the queue saw them before the decision; after
    it, the pair model of that embedding model version is refitted on every decision of this
    database and stored with it (``model_calibrations``), the queue re-scores its candidates and
    re-derives the deer the decision touched. An undo takes its example back out.

    Args:
        conn: a psycopg2 connection (committed here).
        queue: the proposal queue the person answers.
        decision: the answer and what it refers to.
        reviewer: who decided.
        match: matching settings for a class correction that re-identifies a detection.
        lock_timeout_s: how long to wait for an identity run holding the lock.

    Returns:
        ``apply_decision``'s result.

    Raises:
        ReviewError: as ``apply_decision``; nothing was recorded or learnt.
    """
    with queue.lock:
        with conn.cursor() as cur:
            example = _example(cur, queue, decision)
        conn.rollback()
    result = apply_decision(conn, decision, reviewer, match, lock_timeout_s)
    with queue.lock:
        queue.touch(_touched(result))
        with conn.cursor() as cur:
            key = _example_key(result)
            if example is not None and key is not None:
                version, features, label = example
                learner = queue.learner(cur, version)
                learner.add(key, features, label)
                learner.store(cur)
                queue.rescore(cur, version)
            elif result["action"] == "undo":
                for version, learner in queue.learners().items():
                    learner.reload(cur)
                    learner.store(cur)
                    queue.rescore(cur, version)
        conn.commit()
    return result
