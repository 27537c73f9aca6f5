-- Which sample points a `stats refresh` must recompute (issue #13 item 2, incremental refresh).
--
-- Statement-level triggers with transition tables write the distinct points an image,
-- segmentation or retirement statement touched: one INSERT … SELECT DISTINCT per statement,
-- however many rows it wrote. No unique key, so concurrent writers never wait on each other
-- (the refresh reads the ids DISTINCT); the refresh deletes the rows it saw in the same
-- statement that clears streetaudit.stats_input_change, so a point written by a transaction
-- that commits later stays for the next refresh, and a failed refresh loses nothing.
-- Changes that are not one point's own (roads, areas, streets, a point moved or added)
-- reach only the change log: the next refresh is full.
CREATE TABLE IF NOT EXISTS streetaudit.stats_dirty_point (
    point_id bigint NOT NULL,
    xact xid8 NOT NULL DEFAULT pg_current_xact_id()
);

-- SECURITY DEFINER: a role that may write images need not be granted the dirty set.
CREATE OR REPLACE FUNCTION streetaudit.note_dirty_image_points() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO streetaudit.stats_dirty_point (point_id) SELECT DISTINCT point_id FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO streetaudit.stats_dirty_point (point_id) SELECT DISTINCT point_id FROM old_rows;
    ELSE  -- an image moved to another point leaves its old one too
        INSERT INTO streetaudit.stats_dirty_point (point_id)
        SELECT point_id FROM new_rows UNION SELECT point_id FROM old_rows;
    END IF;
    RETURN NULL;
END
$$;

-- A segmentation's point is its image's. One deleted together with its image (cascade) is
-- covered by the image's own trigger.
CREATE OR REPLACE FUNCTION streetaudit.note_dirty_segmentation_points() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO streetaudit.stats_dirty_point (point_id)
        SELECT DISTINCT i.point_id FROM streetaudit.image AS i WHERE i.id IN (SELECT image_id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO streetaudit.stats_dirty_point (point_id)
        SELECT DISTINCT i.point_id FROM streetaudit.image AS i WHERE i.id IN (SELECT image_id FROM old_rows);
    ELSE
        INSERT INTO streetaudit.stats_dirty_point (point_id)
        SELECT DISTINCT i.point_id FROM streetaudit.image AS i
        WHERE i.id IN (SELECT image_id FROM new_rows UNION SELECT image_id FROM old_rows);
    END IF;
    RETURN NULL;
END
$$;

-- A point retired or brought back is its own change; one whose road, distance or position
-- changed may change streets and areas: logged as a move, which makes the next refresh full.
CREATE OR REPLACE FUNCTION streetaudit.note_dirty_sample_points() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
BEGIN
    INSERT INTO streetaudit.stats_dirty_point (point_id)
    SELECT n.id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE (n.retired_at IS NULL) <> (o.retired_at IS NULL);
    IF EXISTS (SELECT 1 FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
               WHERE n.road_id <> o.road_id OR n.distance_m <> o.distance_m
                  OR NOT ST_OrderingEquals(n.geom, o.geom)) THEN
        INSERT INTO streetaudit.stats_input_change (relation, operation) VALUES ('sample_point', 'MOVE')
        ON CONFLICT (xact, relation, operation) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS stats_dirty_insert ON streetaudit.image;
CREATE TRIGGER stats_dirty_insert AFTER INSERT ON streetaudit.image REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_dirty_image_points();
DROP TRIGGER IF EXISTS stats_dirty_update ON streetaudit.image;
CREATE TRIGGER stats_dirty_update AFTER UPDATE ON streetaudit.image
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_dirty_image_points();
DROP TRIGGER IF EXISTS stats_dirty_delete ON streetaudit.image;
CREATE TRIGGER stats_dirty_delete AFTER DELETE ON streetaudit.image REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_dirty_image_points();

DROP TRIGGER IF EXISTS stats_dirty_insert ON streetaudit.segmentation;
CREATE TRIGGER stats_dirty_insert AFTER INSERT ON streetaudit.segmentation REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_dirty_segmentation_points();
DROP TRIGGER IF EXISTS stats_dirty_update ON streetaudit.segmentation;
CREATE TRIGGER stats_dirty_update AFTER UPDATE ON streetaudit.segmentation
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_dirty_segmentation_points();
DROP TRIGGER IF EXISTS stats_dirty_delete ON streetaudit.segmentation;
CREATE TRIGGER stats_dirty_delete AFTER DELETE ON streetaudit.segmentation REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_dirty_segmentation_points();

DROP TRIGGER IF EXISTS stats_dirty_update ON streetaudit.sample_point;
CREATE TRIGGER stats_dirty_update AFTER UPDATE ON streetaudit.sample_point
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_dirty_sample_points();
