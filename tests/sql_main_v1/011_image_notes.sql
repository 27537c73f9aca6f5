-- Notes on streetaudit.image that the collection and segmentation stages rely on.

COMMENT ON COLUMN streetaudit.image.uri IS
    'Where the stored file is: an absolute local file path (no file://) for the default $STREETAUDIT_DATA_DIR/images, otherwise the full fsspec URL (s3://...). Open with fsspec.open(uri). Synthetic views have their true Cityscapes label map beside the image, same path with the suffix replaced by .labels.png.';
COMMENT ON COLUMN streetaudit.image.status IS
    'ok: file stored completely before the row was written; missing: the provider has no imagery there; error: failed after retries (refetched only with --retry-errors); excluded: removed by `streetaudit images clean` (reversible, detail says why).';
COMMENT ON COLUMN streetaudit.image.heading IS 'Requested compass heading of the view in degrees; with provider and point it identifies the view.';
COMMENT ON COLUMN streetaudit.image.pano_id IS 'The provider''s id of the panorama or photo (Baidu static views have none).';
COMMENT ON COLUMN streetaudit.image.attempts IS 'Requests made for this view over all runs, retries included.';
COMMENT ON COLUMN streetaudit.image.sha256 IS 'SHA-256 of the stored bytes; cleaning excludes exact duplicates (provider placeholders).';
-- Cleaning and the "already stored?" check read by provider and status.
CREATE INDEX IF NOT EXISTS image_provider_status_idx ON streetaudit.image (provider, status);
