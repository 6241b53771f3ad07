-- 009: whether a box was photographed in an infrared (monochrome) frame (issue 19/20). Trail cameras
-- switch to infrared at night and a deer then looks so different that re-identification compares
-- day with day and night with night on their own scales (reid/pair_model.py). Measured on the
-- decoded pixels by the vision pipeline (vision/monochrome.py). NULL: not measured (older rows,
-- imported MegaDetector boxes); readers treat it as unknown.
ALTER TABLE detections ADD COLUMN monochrome boolean;
