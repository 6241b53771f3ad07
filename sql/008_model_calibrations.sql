-- 008: thresholds that belong to a re-ID model, fitted in this database (deer_pipeline/reid/calibration.py).
-- A calibration fitted here (from a person's review decisions, or `deer-pipeline calibrate` on a
-- labelled set) wins over the file shipped beside the model's weights. One row per model version.
CREATE TABLE model_calibrations (
    model_version  text PRIMARY KEY,
    calibration    jsonb NOT NULL CHECK (jsonb_typeof(calibration) = 'object'),
    source         text NOT NULL,
    fitted_at      timestamptz NOT NULL DEFAULT now()
);
