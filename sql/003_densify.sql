-- Densification: sample points every `interval_m` metres along each road, in SQL.

-- The UTM zone of a geometry's centroid (EPSG 326xx north, 327xx south): a metric CRS
-- whose scale error stays under 0.1% across a city. Norway/Svalbard zone exceptions are
-- ignored; pass an explicit SRID to densify_roads for those.
CREATE OR REPLACE FUNCTION streetaudit.utm_srid(g geometry)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT (CASE WHEN ST_Y(c) >= 0 THEN 32600 ELSE 32700 END)
           + LEAST(60, GREATEST(1, floor((ST_X(c) + 180.0) / 6.0)::integer + 1))
    FROM (SELECT ST_Centroid(g) AS c) AS centre
$$;
COMMENT ON FUNCTION streetaudit.utm_srid(geometry) IS
    'EPSG code of the UTM zone holding the centroid of g.';

-- Points at 0, d, 2d, ... metres along every road, measured in a metric CRS (the road's
-- UTM zone unless metric_srid is given) and returned in EPSG:4326. One pass per road:
-- ST_LineInterpolatePoints walks the line once for all its points, and one transform
-- per road turns the whole multipoint back to 4326.
CREATE OR REPLACE FUNCTION streetaudit.road_points(
    interval_m double precision,
    metric_srid integer DEFAULT NULL
)
RETURNS TABLE (road_id bigint, seq integer, distance_m double precision, geom geometry(Point, 4326))
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH measured AS (
        SELECT r.id, r.geom, m.gm, ST_Length(m.gm) AS len
        FROM streetaudit.road AS r
        CROSS JOIN LATERAL (
            SELECT ST_Transform(r.geom, COALESCE(metric_srid, streetaudit.utm_srid(r.geom))) AS gm
        ) AS m
    )
    SELECT id, 0, 0.0::double precision, ST_StartPoint(geom)
    FROM measured
    UNION ALL
    -- A single interpolated point comes back as a POINT whose dump path is empty: seq 1.
    SELECT id, COALESCE((d).path[1], 1), COALESCE((d).path[1], 1) * interval_m, (d).geom
    FROM (
        SELECT id, ST_Dump(ST_Transform(ST_LineInterpolatePoints(gm, interval_m / len, true), 4326)) AS d
        FROM measured
        WHERE len >= interval_m
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
SET jit = off
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

    DROP TABLE IF EXISTS pg_temp.densified;
    CREATE TEMP TABLE densified ON COMMIT DROP AS
        SELECT * FROM streetaudit.road_points(interval_m, metric_srid);
    GET DIAGNOSTICS n_points = ROW_COUNT;

    IF dedupe_m > 0 THEN
        -- Grid hashing: cells several tolerances wide, so a point probes its own cell and
        -- only the neighbours whose edge lies within the tolerance. Degrees per metre are
        -- bounded conservatively (1 deg >= 110 km of latitude, >= 110 km * cos(lat) of
        -- longitude at the most poleward point); the sphere distance then decides.
        SELECT dedupe_m / 110000.0,
               dedupe_m / (110000.0 * GREATEST(cos(radians(LEAST(max(abs(ST_Y(geom))) + 0.01, 90))), 0.001))
        INTO tol_y, tol_x
        FROM densified;
        cell_x := 16 * tol_x;
        cell_y := 16 * tol_y;
        WITH cell AS (
            SELECT road_id, seq, geom, x, y, i, j,
                   CASE WHEN x - i * cell_x < tol_x THEN -1 ELSE 0 END AS i_lo,
                   CASE WHEN (i + 1) * cell_x - x < tol_x THEN 1 ELSE 0 END AS i_hi,
                   CASE WHEN y - j * cell_y < tol_y THEN -1 ELSE 0 END AS j_lo,
                   CASE WHEN (j + 1) * cell_y - y < tol_y THEN 1 ELSE 0 END AS j_hi
            FROM (
                SELECT road_id, seq, geom, ST_X(geom) AS x, ST_Y(geom) AS y,
                       floor(ST_X(geom) / cell_x)::bigint AS i, floor(ST_Y(geom) / cell_y)::bigint AS j
                FROM densified
            ) AS located
        ), probe AS (
            -- Most points lie far from every cell edge and probe their own cell only.
            SELECT road_id, seq, geom, x, y, i, j FROM cell WHERE i_lo = 0 AND i_hi = 0 AND j_lo = 0 AND j_hi = 0
            UNION ALL
            SELECT c.road_id, c.seq, c.geom, c.x, c.y, c.i + dx, c.j + dy
            FROM cell AS c, generate_series(c.i_lo, c.i_hi) AS dx, generate_series(c.j_lo, c.j_hi) AS dy
            WHERE NOT (c.i_lo = 0 AND c.i_hi = 0 AND c.j_lo = 0 AND c.j_hi = 0)
        ), doomed AS (
            SELECT DISTINCT p.road_id, p.seq
            FROM probe AS p
            JOIN cell AS q ON q.i = p.i AND q.j = p.j
            WHERE q.road_id < p.road_id
              AND abs(q.x - p.x) <= tol_x AND abs(q.y - p.y) <= tol_y
              AND ST_DistanceSphere(q.geom, p.geom) <= dedupe_m
        )
        DELETE FROM densified AS d
        USING doomed
        WHERE d.road_id = doomed.road_id AND d.seq = doomed.seq;
        GET DIAGNOSTICS n_merged = ROW_COUNT;
    END IF;

    DELETE FROM streetaudit.sample_point AS sp
    WHERE NOT EXISTS (
        SELECT 1 FROM densified AS n
        WHERE n.road_id = sp.road_id AND n.seq = sp.seq
          AND n.distance_m = sp.distance_m AND n.geom = sp.geom
    );
    GET DIAGNOSTICS n_deleted = ROW_COUNT;

    DELETE FROM densified AS n
    USING streetaudit.sample_point AS sp
    WHERE sp.road_id = n.road_id AND sp.seq = n.seq;
    SELECT count(*) INTO n_inserted FROM densified;
    SELECT count(*) INTO n_kept FROM streetaudit.sample_point;

    -- Maintaining a GiST index row by row costs several times more than building it
    -- sorted; when most rows are new (first run, new interval) rebuild it instead.
    bulk := n_inserted > 10000 AND n_inserted > n_kept;
    IF bulk THEN
        DROP INDEX IF EXISTS streetaudit.sample_point_geom_idx;
    END IF;
    INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
    SELECT n.road_id, n.seq, n.distance_m, n.geom FROM densified AS n
    ORDER BY n.road_id, n.seq;
    IF bulk THEN
        CREATE INDEX sample_point_geom_idx ON streetaudit.sample_point USING gist (geom);
    END IF;

    DROP TABLE densified;
    RETURN QUERY SELECT n_points - n_merged, n_merged, n_inserted, n_deleted;
END
$$;
COMMENT ON FUNCTION streetaudit.densify_roads(double precision, double precision, integer) IS
    'Store sample points every interval_m metres along every road; idempotent; see the merging rule above.';

