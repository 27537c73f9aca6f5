-- Column documentation for the segmentation tables (psql \d+, QGIS and pg_tileserv show it).

COMMENT ON COLUMN streetaudit.model.source IS
    'Where the weights come from: a hub id (with @revision when pinned), an absolute checkpoint path, a config+checkpoint pair, or for imported label maps their folder and suffix.';
COMMENT ON COLUMN streetaudit.model.label_set IS
    'Name of the class list and element mapping (cityscapes, ade20k, mapillary-vistas, custom, a file stem); "+terrain" when terrain counts as greenery.';
COMMENT ON COLUMN streetaudit.model.labels IS
    'Class names in id order: labels[i] names the class counted in histogram[i] of this model''s rows (SQL arrays are 1-based, so class id = i - 1).';
COMMENT ON COLUMN streetaudit.segmentation.histogram IS
    'Pixels per class of the model''s label set, in class id order; pixels outside every class (void) are in pixels but in no entry.';
COMMENT ON COLUMN streetaudit.segmentation.pixels IS 'All pixels of the label map (the denominator of the six shares).';
COMMENT ON COLUMN streetaudit.segmentation.mask_uri IS
    'The label map as a PNG of class ids: saved with --save-masks, or the imported file for the masks backend.';
COMMENT ON COLUMN streetaudit.segmentation.error IS
    'Why the image could not be segmented (corrupt or missing file); the shares are NULL then.';
