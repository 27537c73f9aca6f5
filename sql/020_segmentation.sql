-- Models and semantic segmentation results.
-- Every result row names the model that made it, so runs of different models coexist
-- and can be compared. The full per-class histogram is kept so that another mapping of
-- classes onto the six elements needs no re-inference.
-- Comments: post/020_segmentation.sql.

CREATE TABLE IF NOT EXISTS streetaudit.model (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task text NOT NULL CHECK (task IN ('segmentation', 'detection', 'rating')),
    name text NOT NULL,
    backend text NOT NULL,
    source text NOT NULL,
    label_set text NOT NULL,
    labels text[] NOT NULL,
    parameters jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task, backend, source, label_set)
);

CREATE TABLE IF NOT EXISTS streetaudit.segmentation (
    image_id bigint NOT NULL REFERENCES streetaudit.image (id) ON DELETE CASCADE,
    model_id bigint NOT NULL REFERENCES streetaudit.model (id) ON DELETE CASCADE,
    building double precision CHECK (building BETWEEN 0 AND 1),
    road double precision CHECK (road BETWEEN 0 AND 1),
    sky double precision CHECK (sky BETWEEN 0 AND 1),
    greenery double precision CHECK (greenery BETWEEN 0 AND 1),
    sidewalk double precision CHECK (sidewalk BETWEEN 0 AND 1),
    car double precision CHECK (car BETWEEN 0 AND 1),
    histogram bigint[],
    pixels bigint,
    mask_uri text,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, model_id),
    -- Either a full result or a recorded failure (a corrupt image), never half of one.
    CHECK (
        (error IS NULL AND building IS NOT NULL AND road IS NOT NULL AND sky IS NOT NULL
         AND greenery IS NOT NULL AND sidewalk IS NOT NULL AND car IS NOT NULL
         AND histogram IS NOT NULL AND pixels > 0)
        OR (error IS NOT NULL AND building IS NULL)
    )
);
CREATE INDEX IF NOT EXISTS segmentation_model_idx ON streetaudit.segmentation (model_id);
