-- 013: "this box belongs to its deer" is a decision too (issue 20). Review proposes splitting off
-- a sighting much less like its deer than the deer's other sightings; when the person says it
-- belongs, the answer is a review_log row (action 'keep', details: the detection, its deer and
-- the deer's other detections) so it is never proposed again, it teaches the pair model (a
-- labelled "same animal" pair) and it can be undone like any decision.
ALTER TABLE review_log DROP CONSTRAINT review_log_action_check;
ALTER TABLE review_log ADD CONSTRAINT review_log_action_check
    CHECK (action IN ('merge', 'split', 'correct', 'not_same', 'undo', 'keep'));
