-- Streets (tables in sql/080_streets.sql): built from the roads in SQL, with their
-- statistics (api.street_stats) and tile layer (api.streets).

COMMENT ON TABLE streetaudit.street IS
    'Streets: roads of one name and kind merged end to end and split at junctions (nodes where three or more line ends meet), optionally every max_length_m metres; built by streetaudit.build_streets.';
COMMENT ON COLUMN streetaudit.street.key IS
    'Hash of the member road ranges: a rebuild that gives the same street keeps its id.';
COMMENT ON COLUMN streetaudit.street.length_m IS 'Geodesic length in metres.';
COMMENT ON TABLE streetaudit.street_piece IS
    'The stretch [from_m, to_m) of a road (metres along it, as sample_point.distance_m) that belongs to a street.';

-- What is wrong with build_streets' parameters, one (parameter, problem) row each. The
-- shortest split length is 20 m: below that a street holds fewer than one point at the
-- default 30 m interval, which is what streets are meant to avoid.
CREATE OR REPLACE FUNCTION streetaudit.street_parameter_problem(split_by text, max_length_m double precision)
RETURNS TABLE (parameter text, problem text)
LANGUAGE sql IMMUTABLE
AS $$
    SELECT 'by', format('must be junction or name, got %s', coalesce(split_by, 'nothing'))
    WHERE split_by IS NULL OR split_by NOT IN ('junction', 'name')
    UNION ALL
    SELECT 'max_length', format('must be a number of metres from 20 to 100000 (or none), got %s', max_length_m)
    WHERE max_length_m IS NOT NULL AND NOT max_length_m BETWEEN 20 AND 100000
$$;
COMMENT ON FUNCTION streetaudit.street_parameter_problem(text, double precision) IS
    'What is wrong with build_streets parameters, one (parameter, problem) row each; no rows when they are fine.';

-- The street each sample point lies on: the piece of its road whose stretch holds the
-- point's distance along the road. Retired points too (callers filter), so a point that
-- densify reactivates is on its street at once.
CREATE OR REPLACE VIEW streetaudit.point_street AS
    SELECT p.id AS point_id, piece.street_id
    FROM streetaudit.sample_point AS p
    CROSS JOIN LATERAL (
        SELECT sp.street_id FROM streetaudit.street_piece AS sp
        WHERE sp.road_id = p.road_id AND sp.from_m <= p.distance_m
        ORDER BY sp.from_m DESC
        LIMIT 1
    ) AS piece;
COMMENT ON VIEW streetaudit.point_street IS
    'Each sample point (retired included) and the street it lies on, through its road and distance along it.';

-- Build the streets from the roads, replacing the previous ones. Steps:
--   1. every vertex of every road (repeated points removed), at its distance along the
--      road in the road's UTM zone, and its node (position to 1e-9 degrees);
--   2. each node's degree: a line end counts one, a line passing through counts two;
--      a junction is a node of degree >= 3 (counted over all roads, whatever their name);
--   3. roads cut into pieces at the junctions they pass through;
--   4. pieces linked where two ends of the same name and kind meet: `junction` links them
--      only at nodes of degree 2 (nothing else meets there); `name` also across junctions
--      where just those two ends of that name meet (a street goes on across side streets
--      but stops where it forks, as where a dual carriageway begins). Unnamed roads are
--      always cut at junctions: no name says which way they go on;
--   5. linked pieces are one street (connected components), its line ST_LineMerge of them;
--   6. with max_length_m, a street longer than that is cut into the fewest equal parts
--      no longer than it; each part's pieces are stretches of its roads.
-- Streets whose road stretches are unchanged keep their ids (street.key).
CREATE OR REPLACE FUNCTION streetaudit.build_streets(
    split_by text DEFAULT 'name',
    max_length_m double precision DEFAULT 500
)
RETURNS TABLE (streets bigint, kept bigint, added bigint, removed bigint, pieces bigint)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET client_min_messages = warning  -- not a notice per scratch table dropped
AS $$
DECLARE
    bad record;
    n_kept bigint;
    n_added bigint;
    n_removed bigint;
    n_pieces bigint;
BEGIN
    FOR bad IN SELECT * FROM streetaudit.street_parameter_problem(split_by, max_length_m) LOOP
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s %s', bad.parameter, bad.problem);
    END LOOP;
    LOCK TABLE streetaudit.road IN SHARE MODE;
    LOCK TABLE streetaudit.street, streetaudit.street_piece IN EXCLUSIVE MODE;

    -- 1. vertices
    DROP TABLE IF EXISTS pg_temp.street_vertex;
    CREATE TEMP TABLE street_vertex ON COMMIT DROP AS
    SELECT v.road_id, v.idx, v.n, v.node,
           coalesce(sum(v.step) OVER (PARTITION BY v.road_id ORDER BY v.idx), 0) AS at_m
    FROM (
        SELECT r.id AS road_id, (d).path[1] AS idx, ST_NPoints(r.line) AS n,
               ST_SnapToGrid((d).geom, 1e-9) AS node,
               ST_Distance(ST_Transform((d).geom, r.srid),
                           ST_Transform(lag((d).geom) OVER (PARTITION BY r.id ORDER BY (d).path[1]), r.srid)) AS step
        FROM (
            SELECT id, ST_RemoveRepeatedPoints(geom) AS line, streetaudit.utm_srid(geom) AS srid
            FROM streetaudit.road
        ) AS r,
        LATERAL ST_DumpPoints(r.line) AS d
    ) AS v;
    CREATE INDEX ON street_vertex (road_id, idx);
    ANALYZE street_vertex;

    -- 2. node degrees
    DROP TABLE IF EXISTS pg_temp.street_node;
    CREATE TEMP TABLE street_node ON COMMIT DROP AS
    SELECT node, sum(CASE WHEN idx IN (1, n) THEN 1 ELSE 2 END) AS degree
    FROM street_vertex
    GROUP BY node;
    CREATE INDEX ON street_node (node);
    ANALYZE street_node;

    -- 3. pieces: from each cut vertex (an end, or a junction passed through) to the next
    DROP TABLE IF EXISTS pg_temp.street_cut;
    CREATE TEMP TABLE street_cut ON COMMIT DROP AS
    SELECT c.road_id, c.idx, lead(c.idx) OVER w AS next_idx, c.at_m, lead(c.at_m) OVER w AS next_m,
           c.node, lead(c.node) OVER w AS next_node
    FROM (
        SELECT v.road_id, v.idx, v.at_m, v.node
        FROM street_vertex AS v
        JOIN street_node AS nd ON nd.node = v.node
        WHERE v.idx IN (1, v.n) OR nd.degree >= 3
    ) AS c
    WINDOW w AS (PARTITION BY c.road_id ORDER BY c.idx);

    DROP TABLE IF EXISTS pg_temp.street_part_of_road;
    CREATE TEMP TABLE street_part_of_road ON COMMIT DROP AS
    SELECT row_number() OVER (ORDER BY c.road_id, c.idx) AS piece, c.road_id, r.name, r.kind,
           c.at_m AS from_m, c.next_m AS to_m, c.node AS start_node, c.next_node AS end_node,
           (SELECT ST_MakeLine(v.node ORDER BY v.idx) FROM street_vertex AS v
            WHERE v.road_id = c.road_id AND v.idx BETWEEN c.idx AND c.next_idx) AS geom
    FROM street_cut AS c
    JOIN streetaudit.road AS r ON r.id = c.road_id
    WHERE c.next_idx IS NOT NULL;

    -- 4. links between pieces
    DROP TABLE IF EXISTS pg_temp.street_link;
    CREATE TEMP TABLE street_link ON COMMIT DROP AS
    WITH piece_end AS (
        SELECT piece, name, kind, start_node AS node FROM street_part_of_road
        UNION ALL
        SELECT piece, name, kind, end_node FROM street_part_of_road
    ),
    meeting AS (
        SELECT e.node, e.name, e.kind, array_agg(e.piece) AS ends, nd.degree
        FROM piece_end AS e
        JOIN street_node AS nd ON nd.node = e.node
        GROUP BY e.node, e.name, e.kind, nd.degree
    )
    SELECT m.ends[1] AS a, m.ends[2] AS b
    FROM meeting AS m
    WHERE cardinality(m.ends) = 2 AND m.ends[1] <> m.ends[2]
      AND (m.degree = 2 OR (split_by = 'name' AND m.name IS NOT NULL));
    INSERT INTO street_link (a, b) SELECT b, a FROM street_link;
    CREATE INDEX ON street_link (a);
    ANALYZE street_link;

    -- 5. components (a street's pieces form a path or a ring, so each walk is short)
    DROP TABLE IF EXISTS pg_temp.street_component;
    CREATE TEMP TABLE street_component ON COMMIT DROP AS
    WITH RECURSIVE reach (origin, piece) AS (
        SELECT piece, piece FROM street_part_of_road
        UNION
        SELECT reach.origin, l.b FROM reach JOIN street_link AS l ON l.a = reach.piece
    )
    SELECT piece, min(origin) AS component FROM reach GROUP BY piece;
    CREATE INDEX ON street_part_of_road (piece);
    CREATE INDEX ON street_component (component);
    ANALYZE street_part_of_road, street_component;

    -- A component's merge is one line, but for a street that passes one junction twice;
    -- each piece then goes with the merged line that holds its middle.
    DROP TABLE IF EXISTS pg_temp.street_line;
    CREATE TEMP TABLE street_line ON COMMIT DROP AS
    SELECT m.component, coalesce((d).path[1], 1) AS line_no, (d).geom AS geom,
           streetaudit.utm_srid((d).geom) AS srid
    FROM (
        SELECT c.component, ST_LineMerge(ST_Collect(p.geom ORDER BY p.piece)) AS merged
        FROM street_component AS c
        JOIN street_part_of_road AS p ON p.piece = c.piece
        GROUP BY c.component
    ) AS m,
    LATERAL ST_Dump(m.merged) AS d;
    -- Each line in its metric CRS, once: what the parts are measured along.
    ALTER TABLE street_line ADD COLUMN mgeom geometry, ADD COLUMN len double precision, ADD COLUMN parts integer;
    UPDATE street_line SET mgeom = ST_Transform(geom, srid);
    UPDATE street_line
    SET len = ST_Length(mgeom),
        parts = CASE WHEN max_length_m IS NULL THEN 1 ELSE greatest(1, ceil(ST_Length(mgeom) / max_length_m))::integer END;
    CREATE INDEX ON street_line (component, line_no);
    ANALYZE street_line;

    DROP TABLE IF EXISTS pg_temp.street_piece_line;
    CREATE TEMP TABLE street_piece_line ON COMMIT DROP AS
    SELECT DISTINCT ON (p.piece) p.piece, l.component, l.line_no
    FROM street_part_of_road AS p
    JOIN street_component AS c ON c.piece = p.piece
    JOIN street_line AS l ON l.component = c.component
    ORDER BY p.piece, ST_Distance(l.geom, ST_LineInterpolatePoint(p.geom, 0.5)), l.line_no;

    -- 6. parts: where each piece lies along its line (metres from the line's start, forward
    -- or reversed), and which stretch of its road falls in each of the line's equal parts
    DROP TABLE IF EXISTS pg_temp.street_new_piece;
    CREATE TEMP TABLE street_new_piece ON COMMIT DROP AS
    WITH placed AS (
        SELECT p.piece, p.road_id, p.name, p.kind, p.from_m, p.to_m, l.component, l.line_no, l.len, l.parts,
               ST_Length(pm.g) AS plen,
               ST_LineLocatePoint(l.mgeom, ST_LineInterpolatePoint(pm.g, 0.5)) * l.len - ST_Length(pm.g) / 2 AS at,
               ST_LineLocatePoint(l.mgeom, ST_LineInterpolatePoint(pm.g, 0.25))
                   <= ST_LineLocatePoint(l.mgeom, ST_LineInterpolatePoint(pm.g, 0.75)) AS forward
        FROM street_part_of_road AS p
        JOIN street_piece_line AS pl ON pl.piece = p.piece
        JOIN street_line AS l ON l.component = pl.component AND l.line_no = pl.line_no
        CROSS JOIN LATERAL (SELECT ST_Transform(p.geom, l.srid) AS g) AS pm
    ),
    cut AS (
        SELECT pc.*, k.k,
               greatest(pc.at, k.k * pc.len / pc.parts) AS x0,
               least(pc.at + pc.plen, (k.k + 1) * pc.len / pc.parts) AS x1,
               (pc.to_m - pc.from_m) / pc.plen AS ratio
        FROM placed AS pc,
             LATERAL generate_series(0, pc.parts - 1) AS k (k)
    )
    -- Stretch ends within a micrometre of a piece's end are that end: the first stretch of
    -- a road starts at exactly 0, where densify puts its first point.
    SELECT component, line_no, part, piece, road_id, name, kind,
           CASE WHEN a - piece_from < 1e-6 THEN piece_from ELSE a END AS from_m,
           CASE WHEN piece_to - b < 1e-6 THEN piece_to ELSE b END AS to_m
    FROM (
        SELECT component, line_no, k AS part, piece, road_id, name, kind, from_m AS piece_from, to_m AS piece_to,
               CASE WHEN forward THEN greatest(from_m, from_m + (x0 - at) * ratio)
                    ELSE greatest(from_m, from_m + (at + plen - x1) * ratio) END AS a,
               CASE WHEN forward THEN least(to_m, from_m + (x1 - at) * ratio)
                    ELSE least(to_m, from_m + (at + plen - x0) * ratio) END AS b
        FROM cut
        WHERE x1 - x0 > 1e-6
    ) AS stretch;

    DROP TABLE IF EXISTS pg_temp.street_new;
    CREATE TEMP TABLE street_new ON COMMIT DROP AS
    SELECT md5(string_agg(format('%s:%s:%s', np.road_id, round(np.from_m::numeric, 2), round(np.to_m::numeric, 2)),
                          ',' ORDER BY np.road_id, np.from_m)) AS key,
           np.component, np.line_no, np.part,
           min(np.name) AS name, min(np.kind) AS kind,
           array_agg(DISTINCT np.road_id ORDER BY np.road_id) AS road_ids,
           min(np.road_id) AS first_road, min(np.from_m) AS first_m,
           CASE WHEN l.parts = 1 THEN l.geom
                ELSE ST_Transform(ST_LineSubstring(l.mgeom, np.part::double precision / l.parts,
                                                   (np.part + 1)::double precision / l.parts), 4326)
           END::geometry(LineString, 4326) AS geom
    FROM street_new_piece AS np
    JOIN street_line AS l ON l.component = np.component AND l.line_no = np.line_no
    GROUP BY np.component, np.line_no, np.part, l.parts, l.geom, l.mgeom;
    CREATE INDEX ON street_new (component, line_no, part);
    ANALYZE street_new, street_new_piece;

    -- Replace: same road stretches keep their street (and id), the rest go and come.
    DELETE FROM streetaudit.street AS s WHERE NOT EXISTS (SELECT 1 FROM street_new AS n WHERE n.key = s.key);
    GET DIAGNOSTICS n_removed = ROW_COUNT;
    UPDATE streetaudit.street AS s
    SET name = n.name, kind = n.kind, road_ids = n.road_ids, geom = n.geom,
        length_m = ST_Length(n.geom::geography), built_at = now()
    FROM street_new AS n
    WHERE n.key = s.key
      AND (s.name IS DISTINCT FROM n.name OR s.kind IS DISTINCT FROM n.kind OR s.road_ids <> n.road_ids
           OR NOT ST_Equals(s.geom, n.geom));
    SELECT count(*) INTO n_kept FROM streetaudit.street;
    INSERT INTO streetaudit.street (key, name, kind, length_m, road_ids, geom)
    SELECT n.key, n.name, n.kind, ST_Length(n.geom::geography), n.road_ids, n.geom
    FROM street_new AS n
    WHERE NOT EXISTS (SELECT 1 FROM streetaudit.street AS s WHERE s.key = n.key)
    ORDER BY n.first_road, n.first_m;
    GET DIAGNOSTICS n_added = ROW_COUNT;

    DELETE FROM streetaudit.street_piece;
    INSERT INTO streetaudit.street_piece (street_id, road_id, from_m, to_m)
    SELECT s.id, np.road_id, np.from_m, np.to_m
    FROM street_new_piece AS np
    JOIN street_new AS n ON (n.component, n.line_no, n.part) = (np.component, np.line_no, np.part)
    JOIN streetaudit.street AS s ON s.key = n.key;
    GET DIAGNOSTICS n_pieces = ROW_COUNT;

    INSERT INTO streetaudit.street_build (singleton, split_by, max_length_m) VALUES (true, split_by, max_length_m)
    ON CONFLICT (singleton) DO UPDATE SET split_by = EXCLUDED.split_by, max_length_m = EXCLUDED.max_length_m,
                                          built_at = now();
    PERFORM streetaudit.refresh_street_stats();
    RETURN QUERY SELECT n_kept + n_added, n_kept, n_added, n_removed, n_pieces;
END
$$;
COMMENT ON FUNCTION streetaudit.build_streets(text, double precision) IS
    'Rebuild the streets from the roads: merged by name and kind, cut at junctions (split_by junction) or where a name forks (name), and every max_length_m metres into equal parts (NULL: not); points and images are untouched.';

-- Per street: as api.road_stats per road. Streets without data are kept (n_points 0).
CREATE VIEW streetaudit.street_stats_computed AS
    SELECT st.id AS street_id,
           st.name,
           st.kind,
           st.length_m,
           count(pe.point_id)::integer AS n_points,
           avg(pe.building ORDER BY pe.point_id) AS building_mean,
           stddev_samp(pe.building ORDER BY pe.point_id) AS building_std,
           avg(pe.road ORDER BY pe.point_id) AS road_mean,
           stddev_samp(pe.road ORDER BY pe.point_id) AS road_std,
           avg(pe.sky ORDER BY pe.point_id) AS sky_mean,
           stddev_samp(pe.sky ORDER BY pe.point_id) AS sky_std,
           avg(pe.greenery ORDER BY pe.point_id) AS greenery_mean,
           stddev_samp(pe.greenery ORDER BY pe.point_id) AS greenery_std,
           avg(pe.sidewalk ORDER BY pe.point_id) AS sidewalk_mean,
           stddev_samp(pe.sidewalk ORDER BY pe.point_id) AS sidewalk_std,
           avg(pe.car ORDER BY pe.point_id) AS car_mean,
           stddev_samp(pe.car ORDER BY pe.point_id) AS car_std,
           st.road_ids,
           st.geom
    FROM streetaudit.street AS st
    LEFT JOIN (
        streetaudit.point_street AS ps JOIN api.point_elements AS pe ON pe.point_id = ps.point_id
    ) ON ps.street_id = st.id
    GROUP BY st.id;
COMMENT ON VIEW streetaudit.street_stats_computed IS 'api.street_stats as api.point_elements gives it now.';
CREATE TABLE api.street_stats AS SELECT * FROM streetaudit.street_stats_computed ORDER BY street_id;
ALTER TABLE api.street_stats ADD PRIMARY KEY (street_id);
CREATE INDEX IF NOT EXISTS street_stats_geom_idx ON api.street_stats USING gist (geom);
COMMENT ON TABLE api.street_stats IS
    'Per street (streetaudit build_streets): n_points (points with >= 1 ok segmented image), mean and sample std (n-1) of each element over its points; road_ids: its member roads.';

-- For analysts (and tests on streets as clusters): the street of each active sample point.
CREATE VIEW api.point_streets AS
    SELECT ps.point_id, ps.street_id
    FROM streetaudit.point_street AS ps
    JOIN streetaudit.sample_point AS p ON p.id = ps.point_id
    WHERE p.retired_at IS NULL;
COMMENT ON VIEW api.point_streets IS
    'The street (api.street_stats.street_id) of each active sample point, after `streetaudit streets build`.';

-- The tile table of api.streets, as road_features is of api.roads.
CREATE VIEW streetaudit.street_features_computed AS
    SELECT street_id, name, kind, length_m, n_points,
           building_mean, building_std, road_mean, road_std, sky_mean, sky_std,
           greenery_mean, greenery_std, sidewalk_mean, sidewalk_std, car_mean, car_std,
           g.geom,
           ST_Simplify(g.geom, 20, true)::geometry(LineString, 3857) AS overview_geom
    FROM api.street_stats AS s,
         LATERAL (SELECT ST_Transform(s.geom, 3857)::geometry(LineString, 3857) AS geom) AS g;
CREATE TABLE streetaudit.street_features AS SELECT * FROM streetaudit.street_features_computed ORDER BY street_id;
ALTER TABLE streetaudit.street_features ADD PRIMARY KEY (street_id);
CREATE INDEX IF NOT EXISTS street_features_geom_idx ON streetaudit.street_features USING gist (geom);
CREATE INDEX IF NOT EXISTS street_features_overview_geom_idx ON streetaudit.street_features USING gist (overview_geom);

-- Streets with n_points and the mean and std of each element (zoom < 12: simplified, means only; zoom < 14: pre-built).
CREATE OR REPLACE FUNCTION api.streets(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT streetaudit.layer_tile(
        'api.streets', z, x, y, properties, max_bytes,
        geom_column => CASE WHEN z < 12 THEN 'overview_geom' ELSE 'geom' END,
        omit => CASE WHEN z < 12 THEN '%\_std' END)
$$;
COMMENT ON FUNCTION api.streets(integer, integer, integer, text, integer) IS
    'Streets (`streetaudit streets build`) with n_points and the mean and std of each element (zoom < 12: simplified, means only; zoom < 14: pre-built). properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- After a build the published statistics are recomputed for the new streets; the data
-- version changes where statistics are published, so no cache serves the old streets.
CREATE OR REPLACE FUNCTION streetaudit.refresh_street_stats()
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM streetaudit.replace_rows('api.street_stats', 'streetaudit.street_stats_computed', 'street_id', NULL);
    PERFORM streetaudit.replace_rows('streetaudit.street_features', 'streetaudit.street_features_computed', 'street_id', NULL);
    PERFORM streetaudit.prebuild_tiles();
    UPDATE streetaudit.stats_state SET version = streetaudit.next_data_version(version) WHERE model_id IS NOT NULL;
END
$$;
COMMENT ON FUNCTION streetaudit.refresh_street_stats() IS
    'Recompute api.street_stats and the api.streets tiles (after build_streets).';

-- The tile layer's table exists only now (post/031_tiles.sql, which lists it, runs first):
-- encode its pre-built tiles.
SELECT streetaudit.prebuild_tiles();

-- As at the end of post/030_stats.sql: the street statistics' definitions may have changed
-- (the comparison's streets are read through streetaudit.point_street).
INSERT INTO streetaudit.stats_input_change (relation, operation) VALUES ('definitions', 'db migrate')
ON CONFLICT DO NOTHING;
