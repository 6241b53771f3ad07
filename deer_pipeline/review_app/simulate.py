"""``review simulate``: a perfect reviewer answers the queue from a synthetic world's ground truth.

It measures the ranking: how few decisions a person needs to reach clean identities. Stored
detections are matched to true boxes as ``reid.metrics`` does (IoU, per image); a deer stands for
the true individual most of its matched sightings show (a deer made only of duplicate boxes of an
animal stands for that animal). The queue is answered in the order the page shows it (the truth
never chooses what is asked), each answer applied by ``decide`` (the call behind the page's
keys, which also refits the pair model): same individual -> merge (saying the class when the
sexes differ), different or no true animal -> not the same, a stray box -> split it off when it
shows another individual than its deer, else keep it, a class question -> the true class
(``not-deer`` for a box on no animal). It stops where a person following the page would: when
the page suggests stopping (the last ``STOP_AFTER`` proposals were all "no"), when the queue is
empty, or after ``max_decisions``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.metrics import IOU_MATCH, evaluate_database, load_truth, match_boxes
from deer_pipeline.reid.review import ReviewError, deer_state, no_streak
from deer_pipeline.reid.tracklets import box_iou
from deer_pipeline.review_app.decide import Decision, decide
from deer_pipeline.review_app.queue import STOP_AFTER, Proposal, ProposalQueue
from deer_pipeline.vocabulary import NOT_DEER


def truth_of_detections(cur, truth_path: str | Path) -> dict[int, tuple[str, str]]:
    """Map every stored detection matched to a true box to (individual id, true class)."""
    truth = load_truth(truth_path)
    cur.execute(
        "SELECT d.id, i.rel_path, d.x1, d.y1, d.x2, d.y2 FROM detections d"
        " JOIN images i ON i.id = d.image_id WHERE i.rel_path = ANY(%s) ORDER BY d.id",
        (list(truth),),
    )
    by_image: dict[str, list] = defaultdict(list)
    for det, rel_path, *box in cur.fetchall():
        by_image[rel_path].append((det, box))
    out = {}
    for rel_path, items in by_image.items():
        boxes = truth[rel_path]
        for i, j in match_boxes([b for _, b in items], [b["bbox"] for b in boxes]):
            out[items[i][0]] = (boxes[j]["individual_id"], boxes[j]["class"])
    return out


def duplicates_of(cur, truth_path: str | Path, matched: dict) -> dict[int, str]:
    """Unmatched detections that box a true animal again (IoU >= 0.5): id -> individual."""
    truth = load_truth(truth_path)
    cur.execute(
        "SELECT d.id, i.rel_path, d.x1, d.y1, d.x2, d.y2 FROM detections d"
        " JOIN images i ON i.id = d.image_id WHERE i.rel_path = ANY(%s) AND NOT (d.id = ANY(%s))",
        (list(truth), list(matched)),
    )
    out = {}
    for det, rel_path, *box in cur.fetchall():
        best = max(
            ((box_iou(box, b["bbox"]), b["individual_id"]) for b in truth[rel_path]),
            default=(0.0, None),
        )
        if best[0] >= IOU_MATCH:
            out[det] = best[1]
    return out


def _individual(cur, deer_id: int, truth: dict, duplicates: dict) -> str | None:
    """The true animal a deer shows (by its matched sightings, else by duplicate boxes)."""
    cur.execute("SELECT detection_id FROM sightings WHERE deer_id = %s", (deer_id,))
    ids = [r[0] for r in cur.fetchall()]
    votes = Counter(truth[d][0] for d in ids if d in truth)
    if not votes:
        votes = Counter(duplicates[d] for d in ids if d in duplicates)
    return votes.most_common(1)[0][0] if votes else None


def answer(cur, proposal: Proposal, truth: dict, duplicates: dict) -> Decision:
    """What a reviewer who knows the truth answers to one proposal."""
    expect = deer_state(cur, proposal.deer)
    if proposal.kind == "class":
        true_class = truth.get(proposal.detection, (None, NOT_DEER))[1]  # duplicates too
        return Decision(
            "class",
            proposal.left,
            detection=proposal.detection,
            class_name=true_class,
            expect=expect,
        )
    if proposal.kind == "stray":
        part = set(proposal.detections)
        cur.execute("SELECT detection_id FROM sightings WHERE deer_id = %s", (proposal.left,))
        rest = [r[0] for r in cur.fetchall() if r[0] not in part]
        shows = Counter(truth[d][0] for d in part if d in truth)
        others = Counter(truth[d][0] for d in rest if d in truth)
        if not shows and len(part) == 1:  # a box on no animal at all
            return Decision(
                "class",
                proposal.left,
                detection=proposal.detection,
                class_name=NOT_DEER,
                expect=expect,
            )
        split = bool(shows and others) and (
            shows.most_common(1)[0][0] != others.most_common(1)[0][0]
        )
        return Decision(
            "split" if split else "keep",
            proposal.left,
            detections=tuple(sorted(part)),
            expect=expect,
        )
    left = _individual(cur, proposal.left, truth, duplicates)
    right = _individual(cur, proposal.right, truth, duplicates)
    if left is None or right is None:  # a side shows no animal at all: say so, once
        gone = proposal.left if left is None else proposal.right
        return Decision("not_deer", gone, expect=deer_state(cur, [gone]))
    if left != right:
        return Decision("not_same", proposal.left, proposal.right, expect=expect)
    true_class = None
    if proposal.cross_sex:  # the page asks which class the animal is
        classes = Counter(c for i, c in truth.values() if i == left)
        true_class = classes.most_common(1)[0][0]
    return Decision("merge", proposal.left, proposal.right, class_name=true_class, expect=expect)


def simulate(
    conn,
    truth_path: str | Path,
    queue: ProposalQueue | None = None,
    max_decisions: int | None = None,
    reviewer: str = "simulated",
    match: MatchConfig | None = None,
    trace: list | None = None,
) -> dict:
    """Answer the queue from the ground truth until it is empty; return counts and quality.

    Returns:
        ``decisions``, ``merges``, ``not_same``, ``splits``, ``kept`` (stray boxes that
        belong), ``class_corrections``, ``not_deer`` (whole deer that are no animal),
        ``refused``, ``stopped`` (``suggested``: the page suggested stopping; ``empty``;
        ``limit``),
        ``deer_before``, ``deer_after``, ``deer_true``, ``bcubed_precision``,
        ``bcubed_recall`` (after), the same two before, ``budget`` (1.5 x (deer found -
        deer true) + 10, from before) and ``seconds``.
    """
    start = time.perf_counter()
    queue = queue or ProposalQueue()
    with conn.cursor() as cur:
        truth = truth_of_detections(cur, truth_path)
        duplicates = duplicates_of(cur, truth_path, truth)
        before = evaluate_database(cur, truth_path)
    conn.rollback()
    counts = Counter()
    skip: set[str] = set()
    stopped = "limit"
    while max_decisions is None or counts["decisions"] < max_decisions:
        with conn.cursor() as cur:
            if no_streak(cur, STOP_AFTER) >= STOP_AFTER:
                stopped = "suggested"
                break
            top = queue.proposals(cur, skip=skip, limit=1)
            if not top:
                stopped = "empty"
                break
            decision = answer(cur, top[0], truth, duplicates)
        conn.rollback()
        counts["decisions"] += 1
        if trace is not None:
            trace.append((top[0].key, round(top[0].score, 3), decision.answer))
        try:
            result = decide(conn, queue, decision, reviewer, match)
        except ReviewError:
            counts["refused"] += 1
            skip.add(top[0].key)
            continue
        kinds = {
            "merge": "merges",
            "not_same": "not_same",
            "split": "splits",
            "keep": "kept",
            "correct": "class_corrections",
        }
        counts[kinds.get(result["action"], result["action"])] += 1
    with conn.cursor() as cur:
        after = evaluate_database(cur, truth_path)
    conn.rollback()
    return {
        "decisions": counts["decisions"],
        "merges": counts["merges"],
        "not_same": counts["not_same"],
        "splits": counts["splits"],
        "kept": counts["kept"],
        "class_corrections": counts["class_corrections"],
        "not_deer": counts["not_deer"],
        "refused": counts["refused"],
        "stopped": stopped,
        "deer_before": before.deer_found,
        "deer_after": after.deer_found,
        "deer_true": after.deer_true,
        "bcubed_precision_before": round(before.bcubed_precision, 4),
        "bcubed_recall_before": round(before.bcubed_recall, 4),
        "bcubed_precision": round(after.bcubed_precision, 4),
        "bcubed_recall": round(after.bcubed_recall, 4),
        "budget": round(1.5 * (before.deer_found - before.deer_true) + 10, 1),
        "seconds": round(time.perf_counter() - start, 2),
    }
