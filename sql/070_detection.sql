-- Heritage-feature detection: raters' boxes, the ground truth merged from them, stored
-- splits, detector training runs, city-wide detections and Grad-CAM heat maps.
--
-- Provenance is kept everywhere: an annotation names its rater and source file (or the
-- /label page), a ground truth names its merge rule, a dataset its seed and shares, and
-- every result row (detection, heatmap, run) names its model (streetaudit.model, task
-- 'detection'), so results of two detectors never mix.
-- Boxes are in pixels of the stored image, x1 < x2 and y1 < y2 (top-left origin), clipped
-- to the image on import.

CREATE TABLE IF NOT EXISTS streetaudit.annotation (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id bigint NOT NULL REFERENCES streetaudit.image (id),
    rater_id bigint REFERENCES streetaudit.rater (id),
    label text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    x1 double precision NOT NULL CHECK (x1 >= 0),
    y1 double precision NOT NULL CHECK (y1 >= 0),
    x2 double precision NOT NULL,
    y2 double precision NOT NULL,
    source text NOT NULL,
    source_row integer,
    imported_at timestamptz NOT NULL DEFAULT now(),
    replaced_at timestamptz,
    CHECK (x2 > x1 AND y2 > y1)
);
CREATE INDEX IF NOT EXISTS annotation_image_idx ON streetaudit.annotation (image_id) WHERE replaced_at IS NULL;
COMMENT ON TABLE streetaudit.annotation IS
    'Boxes drawn by raters (labelImg VOC, YOLO, COCO files via `annotations import`, or the /label page). source is the file (and source_row the object/line/annotation number in it) or ''label page''. Rows are never deleted: an edit on the /label page sets replaced_at on the rater''s earlier boxes for that image and appends the new ones.';

CREATE TABLE IF NOT EXISTS streetaudit.ground_truth (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    method text NOT NULL CHECK (method IN ('wbf', 'median', 'union')),
    iou double precision NOT NULL CHECK (iou > 0 AND iou <= 1),
    min_raters integer NOT NULL CHECK (min_raters >= 1),
    labels text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streetaudit.ground_truth IS
    'A named ground truth merged from raters'' annotations (`annotations merge`): boxes of one label clustered at IoU >= iou and fused (wbf or median box), kept when drawn by >= min_raters raters (1 = the union, as in the Harbin study).';

CREATE TABLE IF NOT EXISTS streetaudit.ground_truth_box (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ground_truth_id bigint NOT NULL REFERENCES streetaudit.ground_truth (id) ON DELETE CASCADE,
    image_id bigint NOT NULL REFERENCES streetaudit.image (id),
    label text NOT NULL,
    x1 double precision NOT NULL,
    y1 double precision NOT NULL,
    x2 double precision NOT NULL,
    y2 double precision NOT NULL,
    n_raters integer NOT NULL CHECK (n_raters >= 1),
    score double precision,
    CHECK (x2 > x1 AND y2 > y1)
);
CREATE INDEX IF NOT EXISTS ground_truth_box_image_idx ON streetaudit.ground_truth_box (ground_truth_id, image_id);

CREATE TABLE IF NOT EXISTS streetaudit.ground_truth_image (
    ground_truth_id bigint NOT NULL REFERENCES streetaudit.ground_truth (id) ON DELETE CASCADE,
    image_id bigint NOT NULL REFERENCES streetaudit.image (id),
    n_raters integer NOT NULL,
    PRIMARY KEY (ground_truth_id, image_id)
);
COMMENT ON TABLE streetaudit.ground_truth_image IS
    'Every image a ground truth covers, boxes or not: an image raters looked at and left empty is a negative example, not a missing one.';

CREATE TABLE IF NOT EXISTS streetaudit.dataset (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    ground_truth_id bigint NOT NULL REFERENCES streetaudit.ground_truth (id),
    seed bigint NOT NULL,
    test_share double precision NOT NULL CHECK (test_share >= 0 AND test_share < 1),
    val_share double precision NOT NULL CHECK (val_share >= 0 AND val_share < 1),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streetaudit.dataset IS
    'A stored split of a ground truth (`detect split`): every run on the dataset uses the same images in train/val/test. Split by sample point, so the views of one point never straddle train and test.';

CREATE TABLE IF NOT EXISTS streetaudit.dataset_item (
    dataset_id bigint NOT NULL REFERENCES streetaudit.dataset (id) ON DELETE CASCADE,
    image_id bigint NOT NULL REFERENCES streetaudit.image (id),
    split text NOT NULL CHECK (split IN ('train', 'val', 'test')),
    PRIMARY KEY (dataset_id, image_id)
);
CREATE INDEX IF NOT EXISTS dataset_item_split_idx ON streetaudit.dataset_item (dataset_id, split);

CREATE TABLE IF NOT EXISTS streetaudit.detector_run (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    model_id bigint REFERENCES streetaudit.model (id),
    dataset_id bigint NOT NULL REFERENCES streetaudit.dataset (id),
    architecture text NOT NULL,
    labels text[] NOT NULL,
    parameters jsonb NOT NULL DEFAULT '{}'::jsonb,
    weights_uri text,
    checkpoint_uri text,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished', 'failed', 'stopped')),
    detail text,
    epochs_done integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
COMMENT ON TABLE streetaudit.detector_run IS
    'A training run (`detect train`): architecture, parameters (schedule, batch, image size, seed…), the latest checkpoint (for --resume) and, once finished, the final weights registered as a streetaudit.model row (task ''detection'') that predictions and heat maps name.';

CREATE TABLE IF NOT EXISTS streetaudit.detector_epoch (
    run_id bigint NOT NULL REFERENCES streetaudit.detector_run (id) ON DELETE CASCADE,
    epoch integer NOT NULL CHECK (epoch >= 1),
    train_loss double precision,
    val_map double precision,
    val_map50 double precision,
    learning_rate double precision,
    seconds double precision,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, epoch)
);
COMMENT ON TABLE streetaudit.detector_epoch IS
    'Per-epoch training loss and validation COCO mAP of a run (the Harbin study''s figure 9, right).';

CREATE TABLE IF NOT EXISTS streetaudit.detector_evaluation (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id bigint NOT NULL REFERENCES streetaudit.model (id),
    dataset_id bigint NOT NULL REFERENCES streetaudit.dataset (id),
    split text NOT NULL CHECK (split IN ('train', 'val', 'test')),
    map double precision NOT NULL,
    map50 double precision NOT NULL,
    map75 double precision,
    per_class jsonb NOT NULL DEFAULT '{}'::jsonb,
    images integer NOT NULL,
    evaluated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streetaudit.detector_evaluation IS
    'COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP of a model on a split (`detect evaluate`); `detect compare` reads these.';

CREATE TABLE IF NOT EXISTS streetaudit.detection (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id bigint NOT NULL REFERENCES streetaudit.image (id) ON DELETE CASCADE,
    model_id bigint NOT NULL REFERENCES streetaudit.model (id) ON DELETE CASCADE,
    label text NOT NULL,
    score double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    x1 double precision NOT NULL,
    y1 double precision NOT NULL,
    x2 double precision NOT NULL,
    y2 double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS detection_model_image_idx ON streetaudit.detection (model_id, image_id);

CREATE TABLE IF NOT EXISTS streetaudit.detection_done (
    image_id bigint NOT NULL REFERENCES streetaudit.image (id) ON DELETE CASCADE,
    model_id bigint NOT NULL REFERENCES streetaudit.model (id) ON DELETE CASCADE,
    score_threshold double precision NOT NULL,
    n integer NOT NULL,
    predicted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, image_id)
);
COMMENT ON TABLE streetaudit.detection_done IS
    'One row per image a model has run on (n detections at or above score_threshold, possibly 0), written in the same transaction as its detections: `detect predict` resumes from it and never stores an image twice.';

CREATE TABLE IF NOT EXISTS streetaudit.heatmap (
    image_id bigint NOT NULL REFERENCES streetaudit.image (id) ON DELETE CASCADE,
    model_id bigint NOT NULL REFERENCES streetaudit.model (id) ON DELETE CASCADE,
    method text NOT NULL CHECK (method IN ('gradcam', 'gradcam++', 'eigencam')),
    target text NOT NULL,
    uri text,
    inside_boxes double precision CHECK (inside_boxes BETWEEN 0 AND 1),
    on_building double precision CHECK (on_building BETWEEN 0 AND 1),
    facade_height double precision CHECK (facade_height BETWEEN 0 AND 1),
    upper_third double precision CHECK (upper_third BETWEEN 0 AND 1),
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, model_id, method, target)
);
COMMENT ON TABLE streetaudit.heatmap IS
    'Grad-CAM heat map of a detector on an image (`streetaudit explain`): the overlay PNG in the image store and the shares that make the Harbin study''s qualitative finding measurable — heat inside the predicted boxes, on building pixels (segmentation mask), heat-weighted mean relative height within the facade (0 base, 1 top) and share in the facade''s upper third.';
