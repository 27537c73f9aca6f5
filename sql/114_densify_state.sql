-- What the last full densify covered, so the next one can place only the points of roads
-- added since (streetaudit.densify_new_roads, sql/post/003_densify.sql). A road updated or
-- deleted since then can move other roads' merged points, so the trigger below marks the
-- state stale and the next densify is a full one. Inserts leave it alone: a new road's id is
-- larger than every covered one, and merging never drops a point of an earlier road.
CREATE TABLE IF NOT EXISTS streetaudit.densify_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    interval_m double precision NOT NULL,
    dedupe_m double precision NOT NULL,
    metric_srid integer,
    reuse_m double precision NOT NULL,
    max_road_id bigint NOT NULL,       -- roads up to this id have their points
    merged bigint NOT NULL,            -- points merged away among them (the report's total)
    roads_changed boolean NOT NULL DEFAULT false,
    densified_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streetaudit.densify_state IS
    'Parameters and coverage of the last densify; roads_changed: a covered road was updated or deleted since (the next densify is full).';

-- Row triggers, so a load that only adds roads (its upsert and delete statements touching no
-- covered row) leaves the state usable; a rename does not move points and does not count.
CREATE OR REPLACE FUNCTION streetaudit.mark_roads_changed()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE streetaudit.densify_state SET roads_changed = true WHERE NOT roads_changed;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS road_moved ON streetaudit.road;
CREATE TRIGGER road_moved
    AFTER UPDATE OF geom ON streetaudit.road
    FOR EACH ROW WHEN (NOT ST_OrderingEquals(OLD.geom, NEW.geom))
    EXECUTE FUNCTION streetaudit.mark_roads_changed();
DROP TRIGGER IF EXISTS road_deleted ON streetaudit.road;
CREATE TRIGGER road_deleted
    AFTER DELETE ON streetaudit.road
    FOR EACH ROW EXECUTE FUNCTION streetaudit.mark_roads_changed();
DROP TRIGGER IF EXISTS road_truncated ON streetaudit.road;
CREATE TRIGGER road_truncated
    AFTER TRUNCATE ON streetaudit.road
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.mark_roads_changed();
