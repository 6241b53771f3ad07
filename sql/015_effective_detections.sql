-- 015: the detections every reader means, spelled once (issue 24).
-- effective_detections: each box with the class after a person's correction (class_name; the
-- detector's own in detected_class), boxes a person marked not-deer left out.
-- current_detections: the same, for each image only its newest detector version (what exports
-- publish when several detectors or imports have boxed one image).
CREATE VIEW effective_detections AS
SELECT d.id, d.image_id, d.model_version, d.det_index,
       COALESCE(c.class_name, d.class_name) AS class_name,
       d.class_name AS detected_class,
       d.confidence, d.x1, d.y1, d.x2, d.y2, d.class_scores, d.monochrome, d.created_at,
       c.detection_id IS NOT NULL AS corrected, c.corrected_at, c.reviewer AS corrected_by
  FROM detections d
  LEFT JOIN detection_corrections c ON c.detection_id = d.id
 WHERE c.class_name IS DISTINCT FROM 'not-deer';

CREATE VIEW current_detections AS
SELECT e.*
  FROM effective_detections e
  JOIN (SELECT DISTINCT ON (image_id) image_id, model_version
          FROM detections ORDER BY image_id, created_at DESC, id DESC) latest
    ON latest.image_id = e.image_id AND latest.model_version = e.model_version;
