-- Inference speed beside each evaluation, so `detect compare` can show images/s like the
-- Harbin study's comparison table (measured on the evaluation's own device and batch).
ALTER TABLE streetaudit.detector_evaluation ADD COLUMN IF NOT EXISTS images_per_second double precision;
COMMENT ON COLUMN streetaudit.detector_evaluation.images_per_second IS
    'Images per second of the evaluation pass (reading, decoding and the model; on its device and batch size).';
