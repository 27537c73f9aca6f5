-- Sample points are retired, never deleted, by densify: a new interval must not take the
-- images (and their segmentations, and the money paid for them) of the old points with it.
--
-- A point is active while retired_at IS NULL. Collect, the statistics and the tiles use
-- active points only; a retired point keeps every image and segmentation, and densify
-- makes it active again when a new point falls within 1.5 m of it on the same road, so
-- going back to an interval gives back the same point ids, and a new point on the spot of
-- an old one inherits its views instead of fetching them again. Only an explicit prune
-- (`points densify --prune`) deletes retired points, their rows and their files.

ALTER TABLE streetaudit.sample_point ADD COLUMN IF NOT EXISTS retired_at timestamptz;
COMMENT ON COLUMN streetaudit.sample_point.retired_at IS
    'When densify stopped using this point (NULL: active). A retired point keeps its images and segmentations; densify reactivates it when a new point falls within 1.5 m of it on the same road; only `points densify --prune` deletes it.';

-- (road, seq) names a point of the current set only; retired points of other intervals
-- share sequence numbers. Deleting a road still finds all its points by road_id.
ALTER TABLE streetaudit.sample_point DROP CONSTRAINT IF EXISTS sample_point_road_seq_key;
CREATE UNIQUE INDEX IF NOT EXISTS sample_point_active_seq_key
    ON streetaudit.sample_point (road_id, seq) WHERE retired_at IS NULL;
CREATE INDEX IF NOT EXISTS sample_point_road_idx ON streetaudit.sample_point (road_id);

-- densify_roads gained reuse_m: the sources (sql/post/003_densify.sql) define the new one.
DROP FUNCTION IF EXISTS streetaudit.densify_roads(double precision, double precision, integer);
