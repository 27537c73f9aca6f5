-- Which images a rater has looked at for boxes, boxed or not: an image annotated as empty (a VOC
-- file without objects, an empty YOLO .txt, a COCO image without annotations) is a negative
-- example for the ground truth, which the annotation table alone cannot tell from "not looked at".
-- Kept like annotation: a re-import of the same source sets replaced_at and appends.

CREATE TABLE IF NOT EXISTS streetaudit.annotated_image (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id bigint NOT NULL REFERENCES streetaudit.image (id),
    rater_id bigint REFERENCES streetaudit.rater (id),
    source text NOT NULL,
    boxes integer NOT NULL CHECK (boxes >= 0),
    imported_at timestamptz NOT NULL DEFAULT now(),
    replaced_at timestamptz
);
CREATE INDEX IF NOT EXISTS annotated_image_image_idx ON streetaudit.annotated_image (image_id) WHERE replaced_at IS NULL;
COMMENT ON TABLE streetaudit.annotated_image IS
    'One row per image a rater annotated from one source (file or ''label page''), with how many boxes it gave (0: looked at and left empty, a negative example). Never deleted: a re-import sets replaced_at.';
