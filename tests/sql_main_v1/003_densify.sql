-- Densification: sample points every `interval_m` metres along each road, in SQL.

-- The UTM zone of a geometry's centroid (EPSG 326xx north, 327xx south): a metric CRS
-- whose scale error stays under 0.1% across a city. Norway/Svalbard zone exceptions are
-- ignored; pass an explicit SRID to densify_roads for those.
CREATE OR REPLACE FUNCTION streetaudit.utm_srid(g geometry)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- One expression without FROM, and not STRICT, so the planner can inline it into callers.
AS $$
    SELECT (CASE WHEN ST_Y(ST_Centroid(g)) >= 0 THEN 32600 ELSE 32700 END)
           + LEAST(60, GREATEST(1, floor((ST_X(ST_Centroid(g)) + 180.0) / 6.0)::integer + 1))
$$;
COMMENT ON FUNCTION streetaudit.utm_srid(geometry) IS
    'EPSG code of the UTM zone holding the centroid of g.';

-- The points at d, 2d, ... metres along one line as a 4326 multipoint (NULL when the line
-- is shorter than d), measured in a metric CRS: the line's UTM zone unless metric_srid.
-- ST_LineInterpolatePoints walks the line once for all its points, and one transform
-- turns the whole multipoint back. PL/pgSQL so each transform runs once per line;
-- the high COST tells the planner that a parallel scan over roads pays off.
CREATE OR REPLACE FUNCTION streetaudit.points_along(
    g geometry,
    interval_m double precision,
    metric_srid integer DEFAULT NULL
)
RETURNS geometry
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 5000
AS $$
DECLARE
    gm geometry := ST_Transform(g, COALESCE(metric_srid, streetaudit.utm_srid(g)));
    len double precision := ST_Length(gm);
BEGIN
    IF len < interval_m THEN
        RETURN NULL;
    END IF;
    RETURN ST_Transform(ST_LineInterpolatePoints(gm, interval_m / len, true), 4326);
END
$$;
COMMENT ON FUNCTION streetaudit.points_along(geometry, double precision, integer) IS
    'Points at d, 2d, ... metres along a line (metric CRS: its UTM zone unless given), as a 4326 multipoint.';

-- Sample points at 0, d, 2d, ... metres along every road (seq k at k*d metres).
CREATE OR REPLACE FUNCTION streetaudit.road_points(
    interval_m double precision,
    metric_srid integer DEFAULT NULL
)
RETURNS TABLE (road_id bigint, seq integer, distance_m double precision, geom geometry(Point, 4326))
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT r.id, 0, 0.0::double precision, ST_StartPoint(r.geom)
    FROM streetaudit.road AS r
    UNION ALL
    -- A single interpolated point comes back as a POINT whose dump path is empty: seq 1.
    SELECT along.id, COALESCE((along.d).path[1], 1), COALESCE((along.d).path[1], 1) * interval_m, (along.d).geom
    FROM (
        SELECT r.id, ST_Dump(streetaudit.points_along(r.geom, interval_m, metric_srid)) AS d
        FROM streetaudit.road AS r
    ) AS along
$$;
COMMENT ON FUNCTION streetaudit.road_points(double precision, integer) IS
    'Sample points at 0, d, 2d, ... metres along every road (not stored; see densify_roads).';

-- Replace the stored sample points with those for `interval_m`, keeping the rows (and
-- so their ids and the images that reference them) of points that did not move.
--
-- Merging rule (dedupe_m > 0): a point is dropped when a point of a road with a smaller
-- id (loaded earlier) lies within dedupe_m metres of it on the sphere. Roads that meet
-- at a junction would otherwise each photograph the same spot. Comparison is against
-- all candidate points before any are dropped, so the result does not depend on order.
CREATE OR REPLACE FUNCTION streetaudit.densify_roads(
    interval_m double precision DEFAULT 30,
    dedupe_m double precision DEFAULT 1.0,
    metric_srid integer DEFAULT NULL
)
RETURNS TABLE (points bigint, merged bigint, inserted bigint, deleted bigint)
LANGUAGE plpgsql VOLATILE
-- JIT compiles for longer than these one-pass queries run; a parallel scan over the
-- roads halves the time of the expensive part even for a few thousand of them.
SET jit = off
SET parallel_setup_cost = 100
SET min_parallel_table_scan_size = 0
AS $$
DECLARE
    n_points bigint;
    n_merged bigint := 0;
    n_inserted bigint;
    n_deleted bigint;
    n_kept bigint;
    bulk boolean;
    tol_x double precision;
    tol_y double precision;
    cell_x double precision;
    cell_y double precision;
BEGIN
    IF interval_m IS NULL OR NOT interval_m > 0 OR interval_m = 'Infinity' THEN
        RAISE EXCEPTION 'interval must be a positive number of metres, got %', interval_m
            USING ERRCODE = '22023';
    END IF;
    IF dedupe_m IS NULL OR dedupe_m < 0 THEN
        RAISE EXCEPTION 'dedupe distance must be >= 0 metres, got %', dedupe_m
            USING ERRCODE = '22023';
    END IF;
    IF metric_srid IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM spatial_ref_sys
        WHERE srid = metric_srid AND proj4text LIKE '%+units=m %'
    ) THEN
        RAISE EXCEPTION 'SRID % is unknown or not in metres', metric_srid USING ERRCODE = '22023';
    END IF;

    -- Roads must not change under us, and two densify runs must not interleave.
    LOCK TABLE streetaudit.road IN SHARE ROW EXCLUSIVE MODE;
    -- Merging uses grid hashing in degrees: cells 16 tolerances wide, so a point probes
    -- its own cell and only the neighbours whose edge lies within the tolerance.
    -- Degrees per metre are bounded conservatively (1 deg >= 110 km of latitude, and
    -- >= 110 km * cos(lat) of longitude at the most poleward road); the sphere distance
    -- then decides.
    IF dedupe_m > 0 THEN
        SELECT dedupe_m / 110000.0,
               dedupe_m / (110000.0 * GREATEST(cos(radians(LEAST(
                   max(GREATEST(abs(ST_YMin(geom)), abs(ST_YMax(geom)))) + 0.01, 90))), 0.001))
        INTO tol_y, tol_x
        FROM streetaudit.road;
        cell_x := 16 * tol_x;
        cell_y := 16 * tol_y;
    END IF;

    -- An unlogged scratch table rather than a temporary one: parallel workers may read it,
    -- which a temporary table forbids. The road lock above makes runs take turns with it.
    DROP TABLE IF EXISTS streetaudit.densified;
    CREATE UNLOGGED TABLE streetaudit.densified AS
        SELECT p.road_id, p.seq, p.distance_m, p.geom, ST_X(p.geom) AS x, ST_Y(p.geom) AS y,
               floor(ST_X(p.geom) / cell_x)::bigint AS i, floor(ST_Y(p.geom) / cell_y)::bigint AS j
        FROM streetaudit.road_points(interval_m, metric_srid) AS p;
    GET DIAGNOSTICS n_points = ROW_COUNT;

    IF dedupe_m > 0 THEN
        -- Found by a CREATE TABLE AS (which may run in parallel), then deleted.
        DROP TABLE IF EXISTS streetaudit.densify_merged;
        CREATE UNLOGGED TABLE streetaudit.densify_merged AS
        WITH probe AS (
            SELECT road_id, seq, geom, x, y, i, j FROM streetaudit.densified
            UNION ALL
            -- Points near a cell edge also probe the cells across it (most are not).
            SELECT d.road_id, d.seq, d.geom, d.x, d.y, d.i + dx, d.j + dy
            FROM streetaudit.densified AS d,
                 generate_series(CASE WHEN d.x - d.i * cell_x < tol_x THEN -1 ELSE 0 END,
                                 CASE WHEN (d.i + 1) * cell_x - d.x < tol_x THEN 1 ELSE 0 END) AS dx,
                 generate_series(CASE WHEN d.y - d.j * cell_y < tol_y THEN -1 ELSE 0 END,
                                 CASE WHEN (d.j + 1) * cell_y - d.y < tol_y THEN 1 ELSE 0 END) AS dy
            WHERE (d.x - d.i * cell_x < tol_x OR (d.i + 1) * cell_x - d.x < tol_x
                   OR d.y - d.j * cell_y < tol_y OR (d.j + 1) * cell_y - d.y < tol_y)
              AND (dx <> 0 OR dy <> 0)
        )
        SELECT DISTINCT p.road_id, p.seq
        FROM probe AS p
        JOIN streetaudit.densified AS q ON q.i = p.i AND q.j = p.j
        WHERE q.road_id < p.road_id
          AND abs(q.x - p.x) <= tol_x AND abs(q.y - p.y) <= tol_y
          AND ST_DistanceSphere(q.geom, p.geom) <= dedupe_m;
        DELETE FROM streetaudit.densified AS d
        USING streetaudit.densify_merged AS m
        WHERE d.road_id = m.road_id AND d.seq = m.seq;
        GET DIAGNOSTICS n_merged = ROW_COUNT;
        DROP TABLE streetaudit.densify_merged;
    END IF;

    DELETE FROM streetaudit.sample_point AS sp
    WHERE NOT EXISTS (
        SELECT 1 FROM streetaudit.densified AS n
        WHERE n.road_id = sp.road_id AND n.seq = sp.seq
          AND n.distance_m = sp.distance_m AND n.geom = sp.geom
    );
    GET DIAGNOSTICS n_deleted = ROW_COUNT;

    DELETE FROM streetaudit.densified AS n
    USING streetaudit.sample_point AS sp
    WHERE sp.road_id = n.road_id AND sp.seq = n.seq;
    SELECT count(*) INTO n_inserted FROM streetaudit.densified;
    SELECT count(*) INTO n_kept FROM streetaudit.sample_point;

    -- Maintaining a GiST index, a unique index and a foreign key row by row costs several
    -- times more than building them once over the finished table (PostgreSQL's own advice
    -- for bulk loads). When most rows are new (first run, new interval) do that; the
    -- table is locked for the transaction either way.
    bulk := n_inserted > 10000 AND n_inserted > n_kept;
    IF bulk THEN
        ALTER TABLE streetaudit.sample_point DROP CONSTRAINT sample_point_road_fk;
        ALTER TABLE streetaudit.sample_point DROP CONSTRAINT sample_point_road_seq_key;
        DROP INDEX streetaudit.sample_point_geom_idx;
    END IF;
    INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
    SELECT n.road_id, n.seq, n.distance_m, n.geom FROM streetaudit.densified AS n
    ORDER BY n.road_id, n.seq;
    IF bulk THEN
        CREATE INDEX sample_point_geom_idx ON streetaudit.sample_point USING gist (geom);
        ALTER TABLE streetaudit.sample_point
            ADD CONSTRAINT sample_point_road_seq_key UNIQUE (road_id, seq),
            ADD CONSTRAINT sample_point_road_fk FOREIGN KEY (road_id)
                REFERENCES streetaudit.road (id) ON DELETE CASCADE;
    END IF;

    DROP TABLE streetaudit.densified;
    RETURN QUERY SELECT n_points - n_merged, n_merged, n_inserted, n_deleted;
END
$$;
COMMENT ON FUNCTION streetaudit.densify_roads(double precision, double precision, integer) IS
    'Store sample points every interval_m metres along every road; idempotent; see the merging rule above.';

