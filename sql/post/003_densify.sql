-- Densification: sample points every `interval_m` metres along each road, in SQL.
-- (The table is in 002_roads_areas_points.sql; these functions are re-created by `db migrate`
-- whenever this file changes.)

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

-- Sample points at 0, d, 2d, ... metres along every road (seq k at k*d metres), or along
-- the roads whose ids are in `of_roads` (densify_new_roads).
CREATE OR REPLACE FUNCTION streetaudit.road_points(
    interval_m double precision,
    metric_srid integer DEFAULT NULL,
    of_roads bigint[] DEFAULT NULL
)
RETURNS TABLE (road_id bigint, seq integer, distance_m double precision, geom geometry(Point, 4326))
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT r.id, 0, 0.0::double precision, ST_StartPoint(r.geom)
    FROM streetaudit.road AS r
    WHERE of_roads IS NULL OR r.id = ANY (of_roads)
    UNION ALL
    -- A single interpolated point comes back as a POINT whose dump path is empty: seq 1.
    SELECT along.id, COALESCE((along.d).path[1], 1), COALESCE((along.d).path[1], 1) * interval_m, (along.d).geom
    FROM (
        SELECT r.id, ST_Dump(streetaudit.points_along(r.geom, interval_m, metric_srid)) AS d
        FROM streetaudit.road AS r
        WHERE of_roads IS NULL OR r.id = ANY (of_roads)
    ) AS along
$$;
COMMENT ON FUNCTION streetaudit.road_points(double precision, integer, bigint[]) IS
    'Sample points at 0, d, 2d, ... metres along every road, or the roads in of_roads (not stored; see densify_roads).';


-- What is wrong with densify's parameters, as (parameter, problem) rows; none when they are
-- fine. One home for the bounds: densify_roads refuses what this reports, and callers ask
-- it before they write anything (the demo, before it loads its roads). The SRID is numeric
-- so that any integer a user types can be judged rather than fail to match the function.
--
-- Interval: at least 1 m, because sample points closer than that are closer than the
-- positional accuracy of street-view imagery (they would fetch the same panorama), and the
-- number of points grows as length / interval (a millimetre asks PostGIS for more memory
-- than one allocation may take); at most 100 km, beyond which every road has its start
-- point only anyway. Merging: at most 50 m, since it is meant for junctions and its cost
-- grows with the square of the points within reach.
CREATE OR REPLACE FUNCTION streetaudit.densify_parameter_problem(
    interval_m double precision,
    dedupe_m double precision,
    metric_srid numeric DEFAULT NULL,
    reuse_m double precision DEFAULT 1.5
)
RETURNS TABLE (parameter text, problem text)
LANGUAGE sql STABLE
AS $$
    SELECT 'interval_m', format('must be a number of metres from 1 to 100000, got %s', coalesce(interval_m::text, 'nothing'))
    WHERE interval_m IS NULL OR NOT interval_m BETWEEN 1 AND 100000
    UNION ALL
    SELECT 'dedupe_m', format('must be a number of metres from 0 to 50, got %s', coalesce(dedupe_m::text, 'nothing'))
    WHERE dedupe_m IS NULL OR NOT dedupe_m BETWEEN 0 AND 50
    UNION ALL
    SELECT 'reuse_m', format('must be a number of metres from 0 to 10, got %s', coalesce(reuse_m::text, 'nothing'))
    WHERE reuse_m IS NULL OR NOT reuse_m BETWEEN 0 AND 10
    UNION ALL
    SELECT 'metric_srid',
           CASE WHEN EXISTS (SELECT 1 FROM public.spatial_ref_sys AS s WHERE s.srid = metric_srid)
                THEN format('SRID %s is not in metres', metric_srid)
                ELSE format('SRID %s is unknown', metric_srid) END
    WHERE metric_srid IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM public.spatial_ref_sys AS s
        WHERE s.srid = metric_srid AND s.proj4text LIKE '%+units=m %'
    )
$$;
COMMENT ON FUNCTION streetaudit.densify_parameter_problem(double precision, double precision, numeric, double precision) IS
    'What is wrong with densify_roads parameters, one (parameter, problem) row each; no rows when they are fine.';

-- Merging's search box around a point, in degrees (tol_x of longitude, tol_y of latitude):
-- conservative bounds for dedupe_m metres (1 deg >= 110 km of latitude, and >= 110 km *
-- cos(lat) of longitude at the most poleward road); the sphere distance then decides.
-- One home for densify_roads and densify_new_roads, which must merge alike.
CREATE OR REPLACE FUNCTION streetaudit.merge_tolerance(
    dedupe_m double precision, OUT tol_x double precision, OUT tol_y double precision
)
LANGUAGE sql STABLE
AS $$
    SELECT dedupe_m / (110000.0 * GREATEST(cos(radians(max_lat)), 0.001)), dedupe_m / 110000.0
    FROM (SELECT LEAST(max(GREATEST(abs(ST_YMin(geom)), abs(ST_YMax(geom)))) + 0.01, 90) AS max_lat
          FROM streetaudit.road) AS r
$$;
COMMENT ON FUNCTION streetaudit.merge_tolerance(double precision) IS
    'Degrees of longitude and latitude that hold dedupe_m metres anywhere among the roads (merging''s search box).';

-- Make the active sample points those for `interval_m`, retiring (never deleting) the rest.
--
-- Each new point takes, in this order: the stored point with the same road, seq, distance
-- and position (a rerun with the same interval changes nothing); else the nearest stored
-- point of the same road within reuse_m metres (along the road, and on the sphere), active
-- or retired (so returning to an interval reactivates the old ids, and a point on the spot
-- of an old one keeps its images); else a new row. The pairing is one to one: each stored point goes to its
-- nearest new point, and each new point keeps the nearest of those that chose it. A reused
-- point takes the new seq; it also takes the new position unless it has images, which were
-- taken where it stands (it never moves, so it cannot drift from them). Active points that
-- no new point takes are retired. Merging rule (dedupe_m > 0): a point is dropped when a point of a road with a smaller
-- id (loaded earlier) lies within dedupe_m metres of it on the sphere. Roads that meet
-- at a junction would otherwise each photograph the same spot.
CREATE OR REPLACE FUNCTION streetaudit.densify_roads(
    interval_m double precision DEFAULT 30,
    dedupe_m double precision DEFAULT 1.0,
    metric_srid integer DEFAULT NULL,
    reuse_m double precision DEFAULT 1.5
)
RETURNS TABLE (points bigint, merged bigint, inserted bigint, reactivated bigint, retired bigint)
LANGUAGE plpgsql VOLATILE
-- JIT compiles for longer than these one-pass queries run; a parallel scan over the
-- roads halves the time of the expensive part even for a few thousand of them.
SET jit = off
SET parallel_setup_cost = 100
SET min_parallel_table_scan_size = 0
AS $$
DECLARE
    bad record;
    n_points bigint;
    n_merged bigint := 0;
    n_inserted bigint;
    n_reactivated bigint;
    n_retired bigint;
    n_rows bigint;
    n_matched bigint := 0;
    n_kept bigint;
    n_exact bigint := 0;
    n_moved bigint;
    n_updates bigint;
    n_writes bigint;
    bulk boolean;
    tol_x double precision;
    tol_y double precision;
    cell_x double precision;
    cell_y double precision;
BEGIN
    SELECT * INTO bad FROM streetaudit.densify_parameter_problem(interval_m, dedupe_m, metric_srid, reuse_m) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% %', bad.parameter, bad.problem USING ERRCODE = '22023', COLUMN = bad.parameter;
    END IF;

    -- Roads must not change under us, and two densify runs must not interleave.
    LOCK TABLE streetaudit.road IN SHARE ROW EXCLUSIVE MODE;
    -- Merging uses grid hashing in degrees: cells 16 tolerances wide, so a point probes
    -- its own cell and only the neighbours whose edge lies within the tolerance
    -- (merge_tolerance); the sphere distance then decides.
    IF dedupe_m > 0 THEN
        SELECT t.tol_x, t.tol_y INTO tol_x, tol_y FROM streetaudit.merge_tolerance(dedupe_m) AS t;
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

    -- Which stored point each new point becomes: first the unchanged ones ...
    DROP TABLE IF EXISTS streetaudit.densify_match;
    CREATE UNLOGGED TABLE streetaudit.densify_match
        (road_id bigint, seq integer, point_id bigint, was_active boolean, same_seq boolean);
    SELECT count(*) INTO n_rows FROM streetaudit.sample_point;
    IF n_rows > 0 THEN  -- (a first run has nothing to pair, and sorting every new point for that costs)
        -- The last run may have rebuilt the table; plans below need its real size.
        ANALYZE streetaudit.sample_point;
        INSERT INTO streetaudit.densify_match
        SELECT DISTINCT ON (n.road_id, n.seq) n.road_id, n.seq, sp.id, sp.retired_at IS NULL, true
        FROM streetaudit.densified AS n
        JOIN streetaudit.sample_point AS sp
          ON sp.road_id = n.road_id AND sp.seq = n.seq AND sp.distance_m = n.distance_m AND sp.geom = n.geom
        ORDER BY n.road_id, n.seq, sp.retired_at IS NULL DESC, sp.id;
        GET DIAGNOSTICS n_exact = ROW_COUNT;
        n_matched := n_exact;
        ANALYZE streetaudit.densify_match;  -- the joins below are planned from its size
    END IF;
    -- ... then the nearest within reuse_m (along the road and on the sphere), for what is
    -- unpaired on both sides (pairs are one to one, so counts tell). Distances along the
    -- road hash into buckets reuse_m long: a pair lies in the same or a neighbouring bucket,
    -- so this is a hash join, not a probe per point.
    IF reuse_m > 0 AND n_rows > n_matched AND n_points - n_merged > n_matched THEN
        INSERT INTO streetaudit.densify_match
        WITH pair AS (
            SELECT n.road_id, n.seq, sp.id AS point_id, sp.retired_at IS NULL AS was_active,
                   sp.seq = n.seq AS same_seq, abs(sp.distance_m - n.distance_m) AS d
            FROM streetaudit.densified AS n
            CROSS JOIN (VALUES (-1), (0), (1)) AS near (k)
            JOIN streetaudit.sample_point AS sp
              ON sp.road_id = n.road_id
             AND floor(sp.distance_m / reuse_m)::bigint = floor(n.distance_m / reuse_m)::bigint + near.k
            WHERE abs(sp.distance_m - n.distance_m) <= reuse_m
              AND NOT EXISTS (SELECT 1 FROM streetaudit.densify_match AS m
                              WHERE m.road_id = n.road_id AND m.seq = n.seq)
              AND NOT EXISTS (SELECT 1 FROM streetaudit.densify_match AS m WHERE m.point_id = sp.id)
              AND ST_DistanceSphere(n.geom, sp.geom) <= reuse_m
        ), nearest_new AS (
            SELECT DISTINCT ON (point_id) * FROM pair ORDER BY point_id, d, road_id, seq
        )
        SELECT DISTINCT ON (road_id, seq) road_id, seq, point_id, was_active, same_seq
        FROM nearest_new
        ORDER BY road_id, seq, d, was_active DESC, point_id;
    END IF;

    SELECT count(*), count(*) FILTER (WHERE NOT was_active), count(*) FILTER (WHERE was_active),
           count(*) FILTER (WHERE NOT (was_active AND same_seq)), count(*) FILTER (WHERE was_active AND NOT same_seq)
    INTO n_matched, n_reactivated, n_kept, n_updates, n_moved
    FROM streetaudit.densify_match;
    SELECT count(*) - n_kept INTO n_retired FROM streetaudit.sample_point WHERE retired_at IS NULL;
    n_inserted := n_points - n_merged - n_matched;

    -- Maintaining a GiST index, unique and plain indexes and a foreign key row by row costs
    -- several times more than building them once over the finished table (PostgreSQL's own
    -- advice for bulk loads). When most rows are written (first run, new interval) do that;
    -- the table is locked for the transaction either way. The primary key stays: images
    -- reference it.
    n_writes := n_retired + n_updates + n_inserted;
    bulk := n_writes > 10000 AND 2 * n_writes > n_rows + n_inserted;
    IF bulk THEN
        ALTER TABLE streetaudit.sample_point DROP CONSTRAINT sample_point_road_fk;
        DROP INDEX streetaudit.sample_point_active_seq_key;
        DROP INDEX streetaudit.sample_point_road_idx;
        DROP INDEX streetaudit.sample_point_geom_idx;
    END IF;

    -- Retire what is not taken, and for now also what changes seq: (road, seq) is unique
    -- among active points, and the taken points are then activated in one go.
    -- (A rerun with the same interval has nothing to retire or update: both are skipped.)
    IF n_retired + n_moved > 0 THEN
        UPDATE streetaudit.sample_point AS sp SET retired_at = now()
        WHERE sp.retired_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM streetaudit.densify_match AS m
                          WHERE m.point_id = sp.id AND m.was_active AND m.same_seq);
    END IF;
    IF n_updates > 0 OR n_matched > n_exact THEN
        UPDATE streetaudit.sample_point AS sp
        SET retired_at = NULL,
            seq = n.seq,
            distance_m = CASE WHEN imaged.has_images THEN sp.distance_m ELSE n.distance_m END,
            geom = CASE WHEN imaged.has_images THEN sp.geom ELSE n.geom END
        FROM streetaudit.densify_match AS m
        JOIN streetaudit.densified AS n ON n.road_id = m.road_id AND n.seq = m.seq
        CROSS JOIN LATERAL (
            SELECT EXISTS (SELECT 1 FROM streetaudit.image AS i WHERE i.point_id = m.point_id) AS has_images
        ) AS imaged
        WHERE sp.id = m.point_id
          AND (NOT (m.was_active AND m.same_seq)
               OR (NOT imaged.has_images AND (sp.distance_m <> n.distance_m OR NOT sp.geom = n.geom)));
    END IF;

    INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
    SELECT n.road_id, n.seq, n.distance_m, n.geom FROM streetaudit.densified AS n
    WHERE NOT EXISTS (SELECT 1 FROM streetaudit.densify_match AS m WHERE m.road_id = n.road_id AND m.seq = n.seq)
    ORDER BY n.road_id, n.seq;
    DROP TABLE streetaudit.densify_match;

    IF bulk THEN
        CREATE INDEX sample_point_geom_idx ON streetaudit.sample_point USING gist (geom);
        CREATE UNIQUE INDEX sample_point_active_seq_key
            ON streetaudit.sample_point (road_id, seq) WHERE retired_at IS NULL;
        CREATE INDEX sample_point_road_idx ON streetaudit.sample_point (road_id);
        ALTER TABLE streetaudit.sample_point
            ADD CONSTRAINT sample_point_road_fk FOREIGN KEY (road_id)
                REFERENCES streetaudit.road (id) ON DELETE CASCADE;
    END IF;

    DROP TABLE streetaudit.densified;
    -- What this run covered: the next densify with the same parameters may place only the
    -- points of roads added after it (densify_new_roads).
    INSERT INTO streetaudit.densify_state AS s
        (interval_m, dedupe_m, metric_srid, reuse_m, max_road_id, merged, roads_changed, densified_at)
    SELECT interval_m, dedupe_m, metric_srid, reuse_m, coalesce(max(r.id), 0), n_merged, false, now()
    FROM streetaudit.road AS r
    ON CONFLICT (singleton) DO UPDATE
    SET interval_m = EXCLUDED.interval_m, dedupe_m = EXCLUDED.dedupe_m, metric_srid = EXCLUDED.metric_srid,
        reuse_m = EXCLUDED.reuse_m, max_road_id = EXCLUDED.max_road_id, merged = EXCLUDED.merged,
        roads_changed = false, densified_at = now();
    RETURN QUERY SELECT n_points - n_merged, n_merged, n_inserted, n_reactivated, n_retired;
END
$$;
COMMENT ON FUNCTION streetaudit.densify_roads(double precision, double precision, integer, double precision) IS
    'Make the active sample points those every interval_m metres along every road; retires the others (never deletes); reuses stored points within reuse_m metres; idempotent.';

-- The points of roads added since the last densify, when that is all that changed: the same
-- parameters, no covered road moved or deleted (densify_state, sql/114_densify_state.sql).
-- Then the full run's answer for the covered roads is what they already hold: their points
-- depend only on their own line and on roads with smaller ids (merging keeps the earlier
-- road's point). A new road's point is merged away when a point of a road with a smaller id,
-- new or covered, lies within dedupe_m metres on the sphere, exactly as densify_roads
-- decides; the covered roads' points are computed again only near the new roads. No row
-- when the state does not allow it: the caller runs densify_roads.
CREATE OR REPLACE FUNCTION streetaudit.densify_new_roads(
    interval_m double precision DEFAULT 30,
    dedupe_m double precision DEFAULT 1.0,
    metric_srid integer DEFAULT NULL,
    reuse_m double precision DEFAULT 1.5
)
RETURNS TABLE (points bigint, merged bigint, inserted bigint, new_roads bigint)
LANGUAGE plpgsql VOLATILE
SET jit = off
AS $$
DECLARE
    st streetaudit.densify_state;
    added bigint[];
    near bigint[];
    n_merged bigint := 0;
    n_inserted bigint;
    tol_x double precision;
    tol_y double precision;
BEGIN
    LOCK TABLE streetaudit.road IN SHARE ROW EXCLUSIVE MODE;  -- as densify_roads: runs take turns
    SELECT * INTO st FROM streetaudit.densify_state FOR UPDATE;
    IF NOT FOUND OR st.roads_changed OR st.interval_m <> interval_m OR st.dedupe_m <> dedupe_m
       OR st.metric_srid IS DISTINCT FROM metric_srid OR st.reuse_m <> reuse_m THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO added
    FROM streetaudit.road WHERE id > st.max_road_id;

    DROP TABLE IF EXISTS streetaudit.densified_new;
    CREATE UNLOGGED TABLE streetaudit.densified_new AS
        SELECT p.road_id, p.seq, p.distance_m, p.geom
        FROM streetaudit.road_points(interval_m, metric_srid, added) AS p;
    IF dedupe_m > 0 AND cardinality(added) > 0 THEN
        SELECT t.tol_x, t.tol_y INTO tol_x, tol_y FROM streetaudit.merge_tolerance(dedupe_m) AS t;
        SELECT coalesce(array_agg(DISTINCT c.id), '{}') INTO near
        FROM streetaudit.road AS n
        JOIN streetaudit.road AS c ON c.id <= st.max_road_id AND c.geom && ST_Expand(n.geom, tol_x, tol_y)
        WHERE n.id = ANY (added);
        INSERT INTO streetaudit.densified_new
        SELECT p.road_id, p.seq, p.distance_m, p.geom
        FROM streetaudit.road_points(interval_m, metric_srid, near) AS p;
        CREATE INDEX ON streetaudit.densified_new USING gist (geom);
        ANALYZE streetaudit.densified_new;
        DELETE FROM streetaudit.densified_new AS p
        WHERE p.road_id > st.max_road_id
          AND EXISTS (SELECT 1 FROM streetaudit.densified_new AS q
                      WHERE q.road_id < p.road_id AND q.geom && ST_Expand(p.geom, tol_x, tol_y)
                        AND ST_DistanceSphere(q.geom, p.geom) <= dedupe_m);
        GET DIAGNOSTICS n_merged = ROW_COUNT;
    END IF;
    INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
    SELECT road_id, seq, distance_m, geom FROM streetaudit.densified_new
    WHERE road_id > st.max_road_id
    ORDER BY road_id, seq;
    GET DIAGNOSTICS n_inserted = ROW_COUNT;
    DROP TABLE streetaudit.densified_new;
    UPDATE streetaudit.densify_state
    SET max_road_id = GREATEST(st.max_road_id, coalesce((SELECT max(id) FROM streetaudit.road), 0)),
        merged = st.merged + n_merged, densified_at = now();
    RETURN QUERY
        SELECT (SELECT count(*) FROM streetaudit.sample_point WHERE retired_at IS NULL),
               st.merged + n_merged, n_inserted, cardinality(added)::bigint;
END
$$;
COMMENT ON FUNCTION streetaudit.densify_new_roads(double precision, double precision, integer, double precision) IS
    'Place only the points of roads added since the last densify with these parameters; no row when a full densify_roads is needed.';
