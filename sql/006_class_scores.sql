-- 006: class evidence per box (issue 12). The detector runs class-agnostic NMS, so one animal
-- gets one box; class_scores keeps the winning box's score for every deer class, e.g.
-- {"doe": 0.61, "buck": 0.30, "fawn": 0.02}, so sex is a vote over evidence, not one hard label.
-- NULL where the source gave one label only (an imported MegaDetector file, older rows).
ALTER TABLE detections ADD COLUMN class_scores jsonb;
