-- Whether a heat map shows anything. Grad-CAM weights each channel by its mean gradient;
-- where a detector encodes its objects by activations it suppresses (the weights are
-- negative in every channel that is active), ReLU(sum of weight x activation) is zero
-- everywhere: a map of nothing, whose shares are undefined. Such a row says so instead of
-- passing for a map (`empty`); `no_boxes`: nothing at the score threshold to explain.
-- Rows from before this column are 'ok' (their NULL shares tell the same story).
ALTER TABLE streetaudit.heatmap ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'ok';
ALTER TABLE streetaudit.heatmap DROP CONSTRAINT IF EXISTS heatmap_status_check;
ALTER TABLE streetaudit.heatmap
    ADD CONSTRAINT heatmap_status_check CHECK (status IN ('ok', 'no_boxes', 'empty'));
COMMENT ON COLUMN streetaudit.heatmap.status IS
    'ok: a map; empty: the method found no positive evidence (all-zero map, shares NULL; HiResCAM or EigenCAM explain such images); no_boxes: no predicted box at the score threshold to explain.';
