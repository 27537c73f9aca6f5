-- Vector tiles: pg_tileserv function layers over the statistics.
--
-- Contract (pg_tileserv, martin, our API): api.<layer>(z integer, x integer, y integer, ...)
-- RETURNS bytea, STABLE PARALLEL SAFE, with a COMMENT. `properties` (comma-separated
-- attribute names, NULL = all) keeps only the named attributes. `max_bytes` can only lower
-- the 500 KB budget every tile keeps. The layer inside each tile is named like the function
-- (api.roads, ...), as pg_tileserv names table layers.
--
-- A layer is three things, each written once:
--   * its tile table (a derived table in web mercator, kept by the stats refresh): the
--     columns ARE the layer's attributes (an attribute is added by adding a column);
--   * one row of streetaudit.tile_source (feature id, zooms, feature cap, pre-built zooms);
--   * its api function, which only says what differs by zoom.
-- streetaudit.layer_tile (the byte budget and pre-built tiles) and streetaudit.encode_tile
-- (one ST_AsMVT) serve every layer. The encoder names the attributes from the catalog, in
-- SQL it writes once per call: plain typed columns encode faster than a jsonb attribute
-- column (numbers printed and parsed again) or a CASE per attribute.
--
-- Tiles read tables pre-built in web mercator, so a tile costs an index probe and
-- ST_AsMVTGeom, never a transform. The api functions are SECURITY DEFINER with a fixed
-- search_path: streetaudit_reader (and pg_tileserv running as it) may call them without
-- reading streetaudit.*, and cannot substitute objects of its own.

-- Roads (zooms >= 14; road_overview below generalises them for the lower zooms).
CREATE VIEW streetaudit.road_features_computed AS
    SELECT road_id, name, kind, length_m, n_points,
           building_mean, building_std, road_mean, road_std, sky_mean, sky_std,
           greenery_mean, greenery_std, sidewalk_mean, sidewalk_std, car_mean, car_std,
           ST_Transform(geom, 3857)::geometry(LineString, 3857) AS geom
    FROM api.road_stats;
CREATE TABLE streetaudit.road_features AS SELECT * FROM streetaudit.road_features_computed ORDER BY road_id;
ALTER TABLE streetaudit.road_features ADD PRIMARY KEY (road_id);
CREATE INDEX IF NOT EXISTS road_features_geom_idx ON streetaudit.road_features USING gist (geom);

-- Roads generalised for each zoom < 14, so a low-zoom tile draws the whole city within
-- its byte budget instead of the longest roads only. Per zoom, the roads are grouped by
-- kind, by whether they carry data, and by the square cell that holds their midpoint (128
-- tile units: 16 pixels of a 512-pixel tile); a group
-- is one feature: its lines merged (ST_LineMerge, street by street) and simplified to 2 tile units, its
-- length the sum, n_points the sum, each mean the mean over all the group's points
-- (point-weighted, as a road's mean is over its points) and, at zooms 12 and 13 only, each
-- std the sample std over those points (pooled exactly from the roads' n, mean and std);
-- rounded to 3 decimals, so that the tile's value table stays small. Its id is the group's
-- smallest road id (unique per zoom), its name that of its longest street. Every road lies in
-- exactly one group per zoom: nothing is dropped, only merged.
--
-- The lines (streetaudit.road_overview_line) and the numbers are computed apart: a
-- group's lines change only when a road joins or leaves it (its has_data flips), its
-- numbers whenever one of its points changes. The incremental refresh recomputes the
-- numbers of the cells that hold a changed road and the lines of the cells where one
-- flipped; at low zooms a cell is most of the city, and merging its lines is what costs.

-- A cell's name: (z, cx, cy) in one bigint, each index offset by 2^23 into 24 bits, so a
-- refresh can select cells by `cell = ANY (…)`. The cell holding a cell at the zoom above
-- is its parent (indices halved, rounding down: cells are nested, 2 × 2 in each).
CREATE OR REPLACE FUNCTION streetaudit.overview_cell(z integer, cx bigint, cy bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (z::bigint << 48) | ((cx + 8388608) << 24) | (cy + 8388608)
$$;

CREATE OR REPLACE FUNCTION streetaudit.parent_cell(cell bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN cell >> 48 > 0 THEN
        (((cell >> 48) - 1) << 48) | (((((cell >> 24) & 16777215) >> 1) + 4194304) << 24)
        | (((cell & 16777215) >> 1) + 4194304) END
$$;

-- Each road's cell per zoom < 14 (road_overview: 128 tile units square; unit_m is one tile
-- unit, 1/4096 of the tile, at zoom z): its midpoint's cell at zoom 13, and the cells that
-- hold that one at the zooms below, so the zooms' groups nest exactly.
CREATE VIEW streetaudit.road_cell AS
    SELECT f.road_id, zoom.z, 40075016.685578488 / 2 ^ zoom.z / 4096 AS unit_m,
           streetaudit.overview_cell(zoom.z, (at13.x >> (13 - zoom.z)) - (8388608 >> (13 - zoom.z)),
                                     (at13.y >> (13 - zoom.z)) - (8388608 >> (13 - zoom.z))) AS cell
    FROM streetaudit.road_features AS f
    CROSS JOIN LATERAL (SELECT ST_LineInterpolatePoint(f.geom, 0.5) AS p) AS mid
    -- Zoom 13's indices, offset by 2^23 so that a shift halves them rounding down.
    CROSS JOIN LATERAL (
        SELECT floor(ST_X(mid.p) / (40075016.685578488 / 2 ^ 13 / 4096 * 128))::bigint + 8388608 AS x,
               floor(ST_Y(mid.p) / (40075016.685578488 / 2 ^ 13 / 4096 * 128))::bigint + 8388608 AS y
    ) AS at13
    CROSS JOIN generate_series(0, 13) AS zoom (z);
COMMENT ON VIEW streetaudit.road_cell IS
    'The cell (streetaudit.overview_cell) holding each road''s midpoint, per zoom < 14, nested across zooms.';

-- A group's lines: first each street of the group (its roads of one name) as one line: a
-- named street is a path, so ST_LineMerge joins it through the junctions that split it
-- into roads, where merging the whole group would stop at every crossing. Streets may be
-- multi-lines: collected, they are a collection; its lines, merged.
CREATE VIEW streetaudit.road_overview_line_computed AS
    WITH streets AS (
        SELECT c.z, c.unit_m, c.cell, f.kind, f.n_points > 0 AS has_data, f.name,
               min(f.road_id) AS first_road,
               ST_LineMerge(ST_Collect(f.geom ORDER BY f.road_id)) AS geom
        FROM streetaudit.road_cell AS c
        JOIN streetaudit.road_features AS f ON f.road_id = c.road_id
        GROUP BY c.z, c.unit_m, c.cell, f.kind, f.n_points > 0, f.name
    )
    SELECT z, cell, kind, has_data,
           ST_Simplify(ST_LineMerge(ST_CollectionExtract(ST_Collect(geom ORDER BY first_road), 2)), 2 * unit_m, true) AS geom
    FROM streets
    GROUP BY z, unit_m, cell, kind, has_data;
CREATE TABLE streetaudit.road_overview_line AS
    SELECT * FROM streetaudit.road_overview_line_computed ORDER BY cell;
CREATE INDEX IF NOT EXISTS road_overview_line_cell_idx ON streetaudit.road_overview_line (cell);

-- Each street of a group (its roads of one name) with the sums the group's numbers need:
-- at zoom 13 over its roads, at each zoom below over its parts in the four cells the cell
-- holds, the zoom above. Kept as a table, so a refresh recomputes a changed road's street
-- in its zoom 13 cell and then in that cell's parents only, 14 small steps, where the
-- low zooms' cells would otherwise sum the whole city again. Each sum reads its rows
-- sorted by its grouping keys and then road id or cell (one sort, not one per aggregate):
-- a float sum does not depend on the plan, and a cell recomputed alone sums exactly as it
-- does among all the others.
CREATE TABLE streetaudit.road_overview_street (
    z integer NOT NULL, cell bigint NOT NULL, parent bigint, kind text, has_data boolean NOT NULL, name text,
    road_id bigint NOT NULL, length_m double precision, n_points integer,
    building_s1 double precision, building_s2 double precision, building_ss double precision, road_s1 double precision, road_s2 double precision, road_ss double precision, sky_s1 double precision, sky_s2 double precision, sky_ss double precision, greenery_s1 double precision, greenery_s2 double precision, greenery_ss double precision, sidewalk_s1 double precision, sidewalk_s2 double precision, sidewalk_ss double precision, car_s1 double precision, car_s2 double precision, car_ss double precision,
    n_roads integer NOT NULL
);
CREATE INDEX IF NOT EXISTS road_overview_street_cell_idx ON streetaudit.road_overview_street (cell);
CREATE INDEX IF NOT EXISTS road_overview_street_parent_idx ON streetaudit.road_overview_street (parent);

CREATE VIEW streetaudit.road_overview_street_computed AS
    SELECT z, cell, streetaudit.parent_cell(cell) AS parent, kind, has_data, name,
           min(road_id) AS road_id, sum(length_m) AS length_m, sum(n_points)::integer AS n_points,
               sum(n_points * building_mean) AS building_s1, sum(n_points * building_mean ^ 2) AS building_s2,
               sum(coalesce((n_points - 1) * building_std ^ 2, 0)) AS building_ss,
               sum(n_points * road_mean) AS road_s1, sum(n_points * road_mean ^ 2) AS road_s2,
               sum(coalesce((n_points - 1) * road_std ^ 2, 0)) AS road_ss,
               sum(n_points * sky_mean) AS sky_s1, sum(n_points * sky_mean ^ 2) AS sky_s2,
               sum(coalesce((n_points - 1) * sky_std ^ 2, 0)) AS sky_ss,
               sum(n_points * greenery_mean) AS greenery_s1, sum(n_points * greenery_mean ^ 2) AS greenery_s2,
               sum(coalesce((n_points - 1) * greenery_std ^ 2, 0)) AS greenery_ss,
               sum(n_points * sidewalk_mean) AS sidewalk_s1, sum(n_points * sidewalk_mean ^ 2) AS sidewalk_s2,
               sum(coalesce((n_points - 1) * sidewalk_std ^ 2, 0)) AS sidewalk_ss,
               sum(n_points * car_mean) AS car_s1, sum(n_points * car_mean ^ 2) AS car_s2,
               sum(coalesce((n_points - 1) * car_std ^ 2, 0)) AS car_ss,
           count(*)::integer AS n_roads
    FROM (
        SELECT c.z, c.cell, f.kind, f.n_points > 0 AS has_data, f.name, f.road_id, f.length_m, f.n_points,
               f.building_mean, f.building_std, f.road_mean, f.road_std, f.sky_mean, f.sky_std,
               f.greenery_mean, f.greenery_std, f.sidewalk_mean, f.sidewalk_std, f.car_mean, f.car_std
        FROM streetaudit.road_cell AS c
        JOIN streetaudit.road_features AS f ON f.road_id = c.road_id
        WHERE c.z = 13
        ORDER BY c.z, c.cell, f.kind, f.n_points > 0, f.name, f.road_id
    ) AS roads
    GROUP BY z, cell, kind, has_data, name
    UNION ALL
    SELECT z - 1, parent, streetaudit.parent_cell(parent), kind, has_data, name,
           min(road_id), sum(length_m), sum(n_points)::integer,
               sum(building_s1) AS building_s1, sum(building_s2) AS building_s2, sum(building_ss) AS building_ss,
               sum(road_s1) AS road_s1, sum(road_s2) AS road_s2, sum(road_ss) AS road_ss,
               sum(sky_s1) AS sky_s1, sum(sky_s2) AS sky_s2, sum(sky_ss) AS sky_ss,
               sum(greenery_s1) AS greenery_s1, sum(greenery_s2) AS greenery_s2, sum(greenery_ss) AS greenery_ss,
               sum(sidewalk_s1) AS sidewalk_s1, sum(sidewalk_s2) AS sidewalk_s2, sum(sidewalk_ss) AS sidewalk_ss,
               sum(car_s1) AS car_s1, sum(car_s2) AS car_s2, sum(car_ss) AS car_ss,
           sum(n_roads)::integer
    FROM (
        SELECT * FROM streetaudit.road_overview_street WHERE z > 0
        ORDER BY z, parent, kind, has_data, name, cell
    ) AS parts
    GROUP BY z, parent, kind, has_data, name;
COMMENT ON VIEW streetaudit.road_overview_street_computed IS
    'streetaudit.road_overview_street as road_features and (below zoom 13) the table''s own rows of the zoom above give it now.';

-- The streets of these cells (NULL: all) of every zoom, from zoom 13 down: each zoom's
-- rows are made from the zoom above, whose changed cells' parents are the cells to redo.
CREATE OR REPLACE FUNCTION streetaudit.replace_overview_streets(cells13 bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET work_mem = '256MB'
AS $$
DECLARE
    cells bigint[] := cells13;
BEGIN
    FOR level IN REVERSE 13..0 LOOP
        IF cells13 IS NULL THEN
            DELETE FROM streetaudit.road_overview_street WHERE z = level;
            INSERT INTO streetaudit.road_overview_street
            SELECT * FROM streetaudit.road_overview_street_computed WHERE z = level ORDER BY cell;
        ELSE
            DELETE FROM streetaudit.road_overview_street WHERE cell = ANY (cells);
            -- Planned for this zoom (EXECUTE), so that below 13 the branch over the roads is
            -- pruned rather than scanned for cells it cannot hold.
            EXECUTE 'INSERT INTO streetaudit.road_overview_street '
                    'SELECT * FROM streetaudit.road_overview_street_computed WHERE z = $1 AND cell = ANY ($2) ORDER BY cell'
            USING level, cells;
            cells := array(SELECT DISTINCT streetaudit.parent_cell(c) FROM unnest(cells) AS c);
        END IF;
    END LOOP;
END
$$;
SELECT streetaudit.replace_overview_streets(NULL);

-- A group's numbers (over its streets in road id order) with its lines.
CREATE VIEW streetaudit.road_overview_computed AS
    WITH grouped AS (
        SELECT min(road_id) AS road_id, z, 40075016.685578488 / 2 ^ z / 4096 AS unit_m, cell,
               (array_agg(name ORDER BY length_m DESC, road_id) FILTER (WHERE name IS NOT NULL))[1] AS name,
               kind, has_data,
               sum(length_m) AS length_m,
               sum(n_points)::integer AS n_points,
               sum(building_s1) AS building_s1, sum(building_s2) AS building_s2, sum(building_ss) AS building_ss,
               sum(road_s1) AS road_s1, sum(road_s2) AS road_s2, sum(road_ss) AS road_ss,
               sum(sky_s1) AS sky_s1, sum(sky_s2) AS sky_s2, sum(sky_ss) AS sky_ss,
               sum(greenery_s1) AS greenery_s1, sum(greenery_s2) AS greenery_s2, sum(greenery_ss) AS greenery_ss,
               sum(sidewalk_s1) AS sidewalk_s1, sum(sidewalk_s2) AS sidewalk_s2, sum(sidewalk_ss) AS sidewalk_ss,
               sum(car_s1) AS car_s1, sum(car_s2) AS car_s2, sum(car_ss) AS car_ss,
               sum(n_roads)::integer AS n_roads
        FROM (
            SELECT * FROM streetaudit.road_overview_street ORDER BY z, cell, kind, has_data, road_id
        ) AS streets
        GROUP BY z, cell, kind, has_data
    )
    SELECT g.road_id, g.z, g.name, g.kind, g.length_m, g.n_points,
           round((building_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS building_mean,
           CASE WHEN g.z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (building_ss + building_s2 - building_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS building_std,
           round((road_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS road_mean,
           CASE WHEN g.z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (road_ss + road_s2 - road_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS road_std,
           round((sky_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS sky_mean,
           CASE WHEN g.z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (sky_ss + sky_s2 - sky_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS sky_std,
           round((greenery_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS greenery_mean,
           CASE WHEN g.z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (greenery_ss + greenery_s2 - greenery_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS greenery_std,
           round((sidewalk_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS sidewalk_mean,
           CASE WHEN g.z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (sidewalk_ss + sidewalk_s2 - sidewalk_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS sidewalk_std,
           round((car_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS car_mean,
           CASE WHEN g.z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (car_ss + car_s2 - car_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS car_std,
           g.n_roads,
           -- A group shorter than two tile units would vanish when the tile is encoded: it is
           -- drawn as a two-unit dash at its centre instead, so it still shows and counts.
           CASE WHEN ST_Length(l.geom) >= 2 * unit_m THEN l.geom
                ELSE ST_MakeLine(ST_Translate(ST_Centroid(l.geom), -unit_m, 0), ST_Translate(ST_Centroid(l.geom), unit_m, 0))
           END AS geom,
           g.cell  -- not a tile attribute (streetaudit.road_overview_tile leaves it out)
    FROM grouped AS g
    JOIN streetaudit.road_overview_line AS l
      ON l.cell = g.cell AND l.z = g.z AND l.kind IS NOT DISTINCT FROM g.kind AND l.has_data = g.has_data;
CREATE TABLE streetaudit.road_overview AS SELECT * FROM streetaudit.road_overview_computed ORDER BY cell, road_id;
ALTER TABLE streetaudit.road_overview ADD PRIMARY KEY (z, road_id);
CREATE INDEX IF NOT EXISTS road_overview_cell_idx ON streetaudit.road_overview (cell);
CREATE INDEX IF NOT EXISTS road_overview_geom_idx ON streetaudit.road_overview USING gist (geom);
COMMENT ON TABLE streetaudit.road_overview IS
    'Roads generalised per zoom < 14: merged by kind, data or not, and 1/32-tile cell; sums, point-weighted means and (zoom 12-13) pooled std, 3 decimals; n_roads merged.';

CREATE VIEW streetaudit.point_features_computed AS
    SELECT point_id, road_id, n_images, building, road, sky, greenery, sidewalk, car,
           ST_Transform(geom, 3857)::geometry(Point, 3857) AS geom
    FROM api.point_elements;
CREATE TABLE streetaudit.point_features AS SELECT * FROM streetaudit.point_features_computed ORDER BY point_id;
ALTER TABLE streetaudit.point_features ADD PRIMARY KEY (point_id);
CREATE INDEX IF NOT EXISTS point_features_geom_idx ON streetaudit.point_features USING gist (geom);

CREATE VIEW streetaudit.area_features_computed AS
    SELECT area_id, area_name, kind, n_points,
           building_mean, building_std, building_median, road_mean, road_std, road_median,
           sky_mean, sky_std, sky_median, greenery_mean, greenery_std, greenery_median,
           sidewalk_mean, sidewalk_std, sidewalk_median, car_mean, car_std, car_median,
           ST_Transform(geom, 3857)::geometry(MultiPolygon, 3857) AS geom
    FROM api.area_stats
    WHERE area_id IS NOT NULL;
CREATE TABLE streetaudit.area_features AS SELECT * FROM streetaudit.area_features_computed ORDER BY area_id;
ALTER TABLE streetaudit.area_features ADD PRIMARY KEY (area_id);
CREATE INDEX IF NOT EXISTS area_features_geom_idx ON streetaudit.area_features USING gist (geom);

-- Rated images (a campaign has thousands, not millions: a plain view, read live, so a
-- tile follows `ratings recompute` at once).
CREATE VIEW streetaudit.rating_features AS
    SELECT image_id, area_name, elo, bt, bt_se, n_comparisons,
           ST_Transform(geom, 3857)::geometry(Point, 3857) AS geom
    FROM api.image_ratings;

-- The layers. max_features caps a tile; an over-budget tile keeps the largest_first-largest
-- features. Zooms below prebuilt_below are encoded once by the stats refresh.
CREATE VIEW streetaudit.tile_source (
    id, source, feature_id, geometry_type, minzoom, maxzoom, max_features, largest_first, prebuilt_below
) AS VALUES
    ('api.roads', 'streetaudit.road_features'::regclass, 'road_id', 'line', 0, 22, 50000, 'length_m', 14),
    ('api.points', 'streetaudit.point_features'::regclass, 'point_id', 'point', 14, 22, 20000, 'n_images', NULL),
    ('api.areas', 'streetaudit.area_features'::regclass, 'area_id', 'polygon', 0, 22, 5000, 'n_points', 14),
    ('api.ratings', 'streetaudit.rating_features'::regclass, 'image_id', 'point', 0, 22, 20000, 'elo', NULL),
    -- Defined by post/032_streets.sql, after this file: looked up in the catalog when read
    -- (readable by any role, unlike to_regclass's schema lookup), not now.
    ('api.streets', (SELECT c.oid::regclass FROM pg_catalog.pg_class AS c
                     WHERE c.relname = 'street_features' AND c.relnamespace = 'streetaudit'::regnamespace),
     'street_id', 'line', 0, 22, 50000, 'length_m', 14),
    -- Its tile table is defined with the detection views (post/075), after this file: looked up
    -- in the catalog when read (to_regclass would need the reader to use schema streetaudit).
    ('api.detections', (SELECT c.oid::regclass FROM pg_catalog.pg_class AS c
                        WHERE c.relname = 'detection_features' AND c.relnamespace = 'streetaudit'::regnamespace),
     'point_id', 'point', 0, 22, 20000, 'n_detections', NULL);

-- A layer's attributes in column order: every column of its tile table but the feature id
-- and the geometries. A jsonb column is not one: ST_AsMVT makes each of its keys an
-- attribute, named by the data (api.detections' n_<label>).
CREATE VIEW streetaudit.tile_attribute AS
    SELECT l.id AS layer, a.attnum, a.attname::text AS name,
           CASE t.typcategory WHEN 'N' THEN 'Number' WHEN 'B' THEN 'Boolean' ELSE 'String' END AS mvt_type
    FROM streetaudit.tile_source AS l
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = l.source
    JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attname <> l.feature_id
      AND t.typname NOT IN ('geometry', 'jsonb');

-- Which attributes and zooms each layer offers: the API validates `properties=` and
-- writes TileJSON from this, so it never has to guess from a tile.
CREATE VIEW api.tile_layers AS
    SELECT l.id,
           array_agg(a.name ORDER BY a.attnum) AS properties,
           array_agg(a.mvt_type ORDER BY a.attnum) AS property_types,
           l.minzoom, l.maxzoom, l.geometry_type
    FROM streetaudit.tile_source AS l
    JOIN streetaudit.tile_attribute AS a ON a.layer = l.id
    GROUP BY l.id, l.minzoom, l.maxzoom, l.geometry_type;
COMMENT ON VIEW api.tile_layers IS
    'Attributes (MVT types String/Number) and zoom range of each tile function in api; the feature id (road_id, point_id, area_id) is the MVT feature id.';

-- One ST_AsMVT of a layer's features whose `geom_column` meets the tile (64-pixel margin):
-- the attributes named in `keep` (NULL: all) except those LIKE `omit`; at most `cap`
-- features, the largest first when `trimmed`, else in feature id order. Identifiers in the query come from the
-- catalog only; `keep` and `omit` are only ever compared with them.
CREATE OR REPLACE FUNCTION streetaudit.encode_tile(
    layer text, z integer, x integer, y integer, keep text[], cap integer, trimmed boolean,
    geom_column text DEFAULT 'geom', omit text DEFAULT NULL
)
RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    src record;
    attributes text;
    tile bytea;
BEGIN
    SELECT * INTO STRICT src FROM streetaudit.tile_source AS l WHERE l.id = layer;
    -- As streetaudit.tile_attribute, but straight from the catalog, and ordered by its index
    -- rather than a sort in the aggregate: this runs for every tile.
    SELECT string_agg(c, '') INTO attributes
    FROM (
        SELECT format('s.%I, ', a.attname) AS c
        FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = src.source AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname <> src.feature_id AND a.atttypid <> 'public.geometry'::regtype
          AND (keep IS NULL OR a.attname = ANY (keep))
          AND (omit IS NULL OR a.attname NOT LIKE omit)
        ORDER BY a.attnum
    ) AS named;
    EXECUTE format(
        $sql$
        SELECT coalesce(ST_AsMVT(f, %L, 4096, 'geom', %L), ''::bytea) FROM (
            SELECT s.%I, %s ST_AsMVTGeom(s.%I, ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom
            FROM %s AS s
            WHERE s.%I && ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096)
            %s
            LIMIT $4
        ) AS f
        WHERE geom IS NOT NULL
        $sql$,
        src.id, src.feature_id, src.feature_id, coalesce(attributes, ''), geom_column, src.source,
        geom_column,
        -- Features in a fixed order (largest first when trimmed, then by id): a tile's bytes
        -- depend on its features only, not on where the refresh wrote their rows.
        CASE WHEN trimmed THEN format('ORDER BY s.%I DESC, s.%I', src.largest_first, src.feature_id)
             ELSE format('ORDER BY s.%I', src.feature_id) END)
    INTO tile
    USING z, x, y, cap;
    RETURN tile;
END
$$;

-- A layer's tile within its byte budget: the pre-built tile when there is one; else the
-- features encoded, and when that is over budget (at most, and by default, 500 KB)
-- encoded again with proportionally fewer, largest-first features. Empty below minzoom.
CREATE OR REPLACE FUNCTION streetaudit.layer_tile(
    layer text, z integer, x integer, y integer, properties text, max_bytes integer,
    geom_column text DEFAULT 'geom', omit text DEFAULT NULL
)
RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    src record;
    keep text[] := string_to_array(properties, ',');
    budget integer := least(coalesce(max_bytes, 500000), 500000);
    cap integer;
    tile bytea;
BEGIN
    SELECT * INTO STRICT src FROM streetaudit.tile_source AS l WHERE l.id = layer;
    IF z < src.minzoom THEN
        RETURN ''::bytea;
    END IF;
    IF z < src.prebuilt_below AND keep IS NULL AND budget = 500000 THEN
        SELECT p.tile INTO tile FROM streetaudit.prebuilt_tile AS p
        WHERE p.layer = layer_tile.layer AND p.z = layer_tile.z AND p.x = layer_tile.x AND p.y = layer_tile.y;
        IF FOUND THEN
            RETURN tile;
        END IF;
    END IF;
    cap := src.max_features;
    tile := streetaudit.encode_tile(layer, z, x, y, keep, cap, false, geom_column, omit);
    IF octet_length(tile) > budget THEN
        EXECUTE format('SELECT least($4, count(*)) FROM %s WHERE %I && ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096)',
                       src.source, geom_column)
        INTO cap USING z, x, y, cap;
        LOOP
            cap := greatest(1, floor(cap * 0.9 * budget / octet_length(tile))::integer);
            tile := streetaudit.encode_tile(layer, z, x, y, keep, cap, true, geom_column, omit);
            EXIT WHEN octet_length(tile) <= budget OR cap = 1;
        END LOOP;
        IF octet_length(tile) > budget THEN
            tile := ''::bytea;
        END IF;
    END IF;
    RETURN tile;
END
$$;

-- A low-zoom roads tile from road_overview: the pre-built tile when there is one, else
-- the zoom's generalised features meeting the tile. Generalised tiles fit the budget by
-- construction; should one not, it keeps the longest features that fit and each carries
-- truncated = true, so a map can say the tile is incomplete instead of silently showing less.
CREATE OR REPLACE FUNCTION streetaudit.road_overview_tile(
    z integer, x integer, y integer, properties text, max_bytes integer
)
RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    keep text[] := string_to_array(properties, ',');
    budget integer := least(coalesce(max_bytes, 500000), 500000);
    attributes text;
    cap integer;
    tile bytea;
    query text := $sql$
        SELECT coalesce(ST_AsMVT(f, 'api.roads', 4096, 'geom', 'road_id'), ''::bytea) FROM (
            SELECT o.road_id, %s %s ST_AsMVTGeom(o.geom, ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom
            FROM streetaudit.road_overview AS o
            WHERE o.z = $1 AND o.geom && ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096)
            ORDER BY o.length_m DESC, o.road_id
            LIMIT $4
        ) AS f
        WHERE geom IS NOT NULL
    $sql$;
BEGIN
    IF keep IS NULL AND budget = 500000 THEN
        SELECT p.tile INTO tile FROM streetaudit.prebuilt_tile AS p
        WHERE p.layer = 'api.roads' AND p.z = road_overview_tile.z AND p.x = road_overview_tile.x
          AND p.y = road_overview_tile.y;
        IF FOUND THEN
            RETURN tile;
        END IF;
    END IF;
    SELECT string_agg(format('o.%I, ', a.attname), '' ORDER BY a.attnum) INTO attributes
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = 'streetaudit.road_overview'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname NOT IN ('road_id', 'z', 'n_roads', 'geom', 'cell')
      AND (keep IS NULL OR a.attname = ANY (keep));
    EXECUTE format(query, coalesce(attributes, ''), '') INTO tile USING z, x, y, NULL::integer;
    IF octet_length(tile) > budget THEN
        SELECT count(*) INTO cap FROM streetaudit.road_overview AS o
        WHERE o.z = road_overview_tile.z
          AND o.geom && ST_TileEnvelope(road_overview_tile.z, road_overview_tile.x, road_overview_tile.y,
                                        margin => 64.0 / 4096);
        LOOP
            cap := greatest(1, floor(cap * 0.9 * budget / octet_length(tile))::integer);
            EXECUTE format(query, coalesce(attributes, ''), 'true AS truncated,') INTO tile USING z, x, y, cap;
            EXIT WHEN octet_length(tile) <= budget OR cap = 1;
        END LOOP;
        IF octet_length(tile) > budget THEN
            tile := ''::bytea;
        END IF;
    END IF;
    RETURN tile;
END
$$;

-- Road segments with n_points and the mean and std of each element (zoom < 14: generalised and pre-built; zoom < 12: means only).
CREATE OR REPLACE FUNCTION api.roads(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT CASE WHEN z < 14 THEN streetaudit.road_overview_tile(z, x, y, properties, max_bytes)
                ELSE streetaudit.layer_tile('api.roads', z, x, y, properties, max_bytes) END
$$;
COMMENT ON FUNCTION api.roads(integer, integer, integer, text, integer) IS
    'Road segments with n_points and the mean and std of each element (zoom < 14: generalised and pre-built, see streetaudit.road_overview: roads merged by kind and 16-pixel cell, point-weighted means to 3 decimals, std from zoom 12; truncated=true on the features of a tile that had to drop some to fit the budget). properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- Sample points with the mean share of each element over their images; zoom >= 14 only (empty below).
CREATE OR REPLACE FUNCTION api.points(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT streetaudit.layer_tile('api.points', z, x, y, properties, max_bytes)
$$;
COMMENT ON FUNCTION api.points(integer, integer, integer, text, integer) IS
    'Sample points with the mean share of each element over their images; zoom >= 14 only (empty below). properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- Heritage areas with n_points and the mean, std and median of each element (zoom < 14: pre-built).
CREATE OR REPLACE FUNCTION api.areas(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT streetaudit.layer_tile('api.areas', z, x, y, properties, max_bytes)
$$;
COMMENT ON FUNCTION api.areas(integer, integer, integer, text, integer) IS
    'Heritage areas with n_points and the mean, std and median of each element (zoom < 14: pre-built). properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- Rated images (points) with their pooled scores, for colouring by score; best rated first when a tile is over budget.
CREATE OR REPLACE FUNCTION api.ratings(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT streetaudit.layer_tile('api.ratings', z, x, y, properties, max_bytes)
$$;
COMMENT ON FUNCTION api.ratings(integer, integer, integer, text, integer) IS
    'Rated images (points) with pooled elo, bt, bt_se and n_comparisons (from `streetaudit ratings recompute`), for colouring by score; best rated first when over budget. properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- Encode again every pre-built tile: for each layer that has them, every tile of zoom
-- 0 .. prebuilt_below - 1 whose buffered envelope meets the layer's data, made by the
-- layer's own api function (so a pre-built tile is exactly the tile it stands for).
CREATE OR REPLACE FUNCTION streetaudit.prebuild_tiles()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    src record;
    b box2d;
    n bigint;
    total bigint := 0;
BEGIN
    DELETE FROM streetaudit.prebuilt_tile;
    FOR src IN SELECT * FROM streetaudit.tile_source WHERE prebuilt_below IS NOT NULL AND source IS NOT NULL LOOP
        EXECUTE format('SELECT ST_Extent(geom) FROM %s', src.source) INTO b;
        CONTINUE WHEN b IS NULL;
        EXECUTE format(
            $sql$
            INSERT INTO streetaudit.prebuilt_tile (layer, z, x, y, tile)
            WITH zoom AS (
                SELECT z, 40075016.685578488 / 2 ^ z AS size, 2 ^ z - 1 AS last
                FROM generate_series(0, $2 - 1) AS z
            )
            SELECT $1, zoom.z, tx, ty, %s(zoom.z, tx, ty)
            FROM zoom,
                 generate_series(
                     greatest(0, floor((ST_XMin($3) - size * 64 / 4096 + 20037508.342789244) / size))::integer,
                     least(last, floor((ST_XMax($3) + size * 64 / 4096 + 20037508.342789244) / size))::integer) AS tx,
                 generate_series(
                     greatest(0, floor((20037508.342789244 - ST_YMax($3) - size * 64 / 4096) / size))::integer,
                     least(last, floor((20037508.342789244 - ST_YMin($3) + size * 64 / 4096) / size))::integer) AS ty
            $sql$,
            to_regproc(src.id))
        USING src.id, src.prebuilt_below, b;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;
COMMENT ON FUNCTION streetaudit.prebuild_tiles() IS
    'Encode again the pre-built low-zoom tiles of every layer from the tile tables; returns how many.';

-- A data version newer than `version` and than any earlier one, even of a recreated database.
CREATE OR REPLACE FUNCTION streetaudit.next_data_version(version bigint)
RETURNS bigint
LANGUAGE sql VOLATILE
AS $$
    SELECT greatest(version + 1, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
$$;

-- As streetaudit.replace_rows for the given keys, but writing only the rows that differ
-- (byte for byte, *=) from those published, and noting the geometry of each row removed or
-- added (its bounding box) in pg_temp.stats_changed_feature (per zoom when the table has one), so that only
-- the pre-built tiles those rows meet are encoded again.
CREATE OR REPLACE FUNCTION streetaudit.replace_changed_rows(
    target regclass, source regclass, key text, keys bigint[], layer text, z_column text DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET client_min_messages = warning  -- not a notice per scratch table dropped
SET work_mem = '256MB'  -- a city's overview cells sort in memory
AS $$
DECLARE
    old_z text := CASE WHEN z_column IS NULL THEN 'NULL::integer' ELSE format('t.%I', z_column) END;
    new_z text := CASE WHEN z_column IS NULL THEN 'NULL::integer' ELSE format('%I', z_column) END;
    n bigint;
    total bigint;
BEGIN
    DROP TABLE IF EXISTS pg_temp.stats_fresh;
    EXECUTE format('CREATE TEMP TABLE stats_fresh ON COMMIT DROP AS SELECT * FROM %s WHERE %I = ANY ($1)', source, key)
    USING keys;
    EXECUTE format(
        $sql$
        WITH gone AS (
            DELETE FROM %1$s AS t
            WHERE t.%2$I = ANY ($1)
              AND NOT EXISTS (SELECT 1 FROM pg_temp.stats_fresh AS f WHERE f.%2$I = t.%2$I AND f.* *= t.*)
            RETURNING %3$s AS z, t.geom
        )
        INSERT INTO pg_temp.stats_changed_feature (layer, z, geom) SELECT $2, z, ST_Envelope(geom) FROM gone
        $sql$,
        target, key, old_z)
    USING keys, layer;
    GET DIAGNOSTICS total = ROW_COUNT;
    EXECUTE format(
        $sql$
        WITH added AS (
            INSERT INTO %1$s
            SELECT f.* FROM pg_temp.stats_fresh AS f
            WHERE NOT EXISTS (SELECT 1 FROM %1$s AS t WHERE t.%2$I = f.%2$I AND t.* *= f.*)
            ORDER BY f.%2$I
            RETURNING %3$s AS z, geom
        )
        INSERT INTO pg_temp.stats_changed_feature (layer, z, geom) SELECT $1, z, ST_Envelope(geom) FROM added
        $sql$,
        target, key, new_z)
    USING layer;
    GET DIAGNOSTICS n = ROW_COUNT;
    DROP TABLE pg_temp.stats_fresh;
    RETURN total + n;
END
$$;
COMMENT ON FUNCTION streetaudit.replace_changed_rows(regclass, regclass, text, bigint[], text, text) IS
    'Replace the rows of a tile table whose key is in keys by those its definition view gives now, writing only those that differ; notes their geometries for streetaudit.prebuild_changed_tiles.';

-- Encode again the pre-built tiles that a changed feature (pg_temp.stats_changed_feature,
-- written by streetaudit.replace_changed_rows) meets, by the same test encode_tile selects
-- features with. The set of pre-built tiles stays: it follows the layers' extents, which
-- only a change of roads, areas or streets moves, and such a change makes a full refresh.
-- Deleted first, then encoded in a second statement: a layer's function returns the
-- pre-built tile while there is one.
CREATE OR REPLACE FUNCTION streetaudit.prebuild_changed_tiles()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET client_min_messages = warning
AS $$
DECLARE
    src record;
    n bigint;
    total bigint := 0;
BEGIN
    DROP TABLE IF EXISTS pg_temp.stats_stale_tile;
    CREATE TEMP TABLE stats_stale_tile (layer text, z integer, x integer, y integer) ON COMMIT DROP;
    -- Each tile's envelope once (a city has tens of pre-built tiles, a change thousands of
    -- features, kept as their bounding boxes).
    WITH stale AS (
        SELECT p.layer, p.z, p.x, p.y
        FROM streetaudit.prebuilt_tile AS p
        CROSS JOIN LATERAL (SELECT ST_TileEnvelope(p.z, p.x, p.y, margin => 64.0 / 4096) AS e) AS t
        WHERE EXISTS (
            SELECT 1 FROM pg_temp.stats_changed_feature AS c
            WHERE c.layer = p.layer AND (c.z IS NULL OR c.z = p.z) AND c.geom && t.e)
    ), gone AS (
        DELETE FROM streetaudit.prebuilt_tile AS p
        USING stale AS s
        WHERE (p.layer, p.z, p.x, p.y) = (s.layer, s.z, s.x, s.y)
        RETURNING p.layer, p.z, p.x, p.y
    )
    INSERT INTO pg_temp.stats_stale_tile SELECT * FROM gone;
    FOR src IN SELECT * FROM streetaudit.tile_source WHERE prebuilt_below IS NOT NULL AND source IS NOT NULL LOOP
        EXECUTE format(
            'INSERT INTO streetaudit.prebuilt_tile (layer, z, x, y, tile) '
            'SELECT layer, z, x, y, %s(z, x, y) FROM pg_temp.stats_stale_tile WHERE layer = $1',
            to_regproc(src.id))
        USING src.id;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    DROP TABLE pg_temp.stats_stale_tile;
    RETURN total;
END
$$;
COMMENT ON FUNCTION streetaudit.prebuild_changed_tiles() IS
    'Encode again the pre-built tiles that a feature changed by this refresh meets; returns how many.';

-- The full refresh: every published table replaced, every pre-built tile encoded again.
CREATE OR REPLACE FUNCTION streetaudit.publish_all()
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM streetaudit.replace_rows('api.point_elements', 'streetaudit.point_elements_computed', 'point_id', NULL);
    PERFORM streetaudit.replace_rows('api.road_stats', 'streetaudit.road_stats_computed', 'road_id', NULL);
    PERFORM streetaudit.replace_rows('api.area_stats', 'streetaudit.area_stats_computed', 'area_id', NULL);
    PERFORM streetaudit.replace_rows('api.street_stats', 'streetaudit.street_stats_computed', 'street_id', NULL);
    PERFORM streetaudit.replace_rows('streetaudit.road_features', 'streetaudit.road_features_computed', 'road_id', NULL);
    PERFORM streetaudit.replace_rows('streetaudit.road_overview_line', 'streetaudit.road_overview_line_computed', 'cell', NULL);
    PERFORM streetaudit.replace_overview_streets(NULL);
    PERFORM streetaudit.replace_rows('streetaudit.road_overview', 'streetaudit.road_overview_computed', 'cell', NULL);
    PERFORM streetaudit.replace_rows('streetaudit.point_features', 'streetaudit.point_features_computed', 'point_id', NULL);
    PERFORM streetaudit.replace_rows('streetaudit.area_features', 'streetaudit.area_features_computed', 'area_id', NULL);
    PERFORM streetaudit.replace_rows('streetaudit.street_features', 'streetaudit.street_features_computed', 'street_id', NULL);
    PERFORM streetaudit.prebuild_tiles();
END
$$;

-- The incremental refresh: the rows of these points, of their roads and streets, and of the
-- overview cells their roads lie in; the area statistics whole (every point is in one);
-- then the pre-built tiles that a changed feature meets. The same statements as the full
-- refresh, restricted to those keys, so what it publishes is what a full one would.
CREATE OR REPLACE FUNCTION streetaudit.publish_points(points bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET client_min_messages = warning
AS $$
DECLARE
    roads bigint[] := array(SELECT DISTINCT p.road_id FROM streetaudit.sample_point AS p WHERE p.id = ANY (points));
    streets bigint[] := array(SELECT DISTINCT ps.street_id FROM streetaudit.point_street AS ps
                              WHERE ps.point_id = ANY (points));
    flipped bigint[];
BEGIN
    DROP TABLE IF EXISTS pg_temp.stats_changed_feature;
    CREATE TEMP TABLE stats_changed_feature (layer text, z integer, geom geometry) ON COMMIT DROP;
    PERFORM streetaudit.replace_rows('api.point_elements', 'streetaudit.point_elements_computed', 'point_id', points);
    PERFORM streetaudit.replace_rows('api.road_stats', 'streetaudit.road_stats_computed', 'road_id', roads);
    PERFORM streetaudit.replace_rows('api.area_stats', 'streetaudit.area_stats_computed', 'area_id', NULL);
    PERFORM streetaudit.replace_rows('api.street_stats', 'streetaudit.street_stats_computed', 'street_id', streets);
    -- Roads that gained their first point of data or lost their last move to another group.
    flipped := array(SELECT f.road_id FROM streetaudit.road_features AS f
                     JOIN api.road_stats AS s ON s.road_id = f.road_id
                     WHERE f.road_id = ANY (roads) AND (f.n_points > 0) <> (s.n_points > 0));
    PERFORM streetaudit.replace_rows('streetaudit.road_features', 'streetaudit.road_features_computed', 'road_id', roads);
    IF cardinality(flipped) > 0 THEN
        PERFORM streetaudit.replace_rows(
            'streetaudit.road_overview_line', 'streetaudit.road_overview_line_computed', 'cell',
            array(SELECT DISTINCT c.cell FROM streetaudit.road_cell AS c WHERE c.road_id = ANY (flipped)));
    END IF;
    PERFORM streetaudit.replace_overview_streets(
        array(SELECT DISTINCT c.cell FROM streetaudit.road_cell AS c WHERE c.road_id = ANY (roads) AND c.z = 13));
    PERFORM streetaudit.replace_changed_rows(
        'streetaudit.road_overview', 'streetaudit.road_overview_computed', 'cell',
        array(SELECT DISTINCT c.cell FROM streetaudit.road_cell AS c WHERE c.road_id = ANY (roads)), 'api.roads', 'z');
    PERFORM streetaudit.replace_rows('streetaudit.point_features', 'streetaudit.point_features_computed', 'point_id', points);
    PERFORM streetaudit.replace_changed_rows(
        'streetaudit.area_features', 'streetaudit.area_features_computed', 'area_id',
        array(SELECT a.id FROM streetaudit.heritage_area AS a), 'api.areas');
    PERFORM streetaudit.replace_changed_rows(
        'streetaudit.street_features', 'streetaudit.street_features_computed', 'street_id', streets, 'api.streets');
    PERFORM streetaudit.prebuild_changed_tiles();
END
$$;

-- Refresh everything the readers see from one model, in dependency order, and bump the
-- data version. The caller commits (the stats flow writes the comparison in the same
-- transaction, so readers never see statistics of two models mixed).
--
-- With `incremental`, and when every change logged since the last refresh is a point's own
-- (images, segmentations, a point retired or brought back: streetaudit.stats_dirty_point
-- names them) and they are at most a tenth of the published points, only what those points
-- reach is recomputed (streetaudit.publish_points); otherwise everything is
-- (streetaudit.publish_all). Returns the new data version, the mode and the points recomputed.
--
-- Publishing never blocks a reader: the tables are written with DELETE and INSERT, whose
-- row locks readers' ACCESS SHARE does not conflict with; readers see the old rows, whole,
-- until the caller commits, then the new ones.
CREATE OR REPLACE FUNCTION streetaudit.refresh_stats(stats_model bigint, incremental boolean DEFAULT false)
RETURNS TABLE (version bigint, mode text, points bigint)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    new_version bigint;
    not_points_only boolean;
    dirty bigint[];
BEGIN
    -- First, before any data is read and in one statement (one snapshot): the change log and
    -- the dirty points go together; a change committed from here on stays for the next
    -- refresh (see streetaudit.stats_refresh_reason), and a rollback puts both back.
    WITH logged AS (
        DELETE FROM streetaudit.stats_input_change RETURNING relation, operation
    ), marked AS (
        DELETE FROM streetaudit.stats_dirty_point RETURNING point_id
    )
    SELECT (SELECT coalesce(bool_or(NOT ((l.relation IN ('image', 'segmentation')
                                         AND l.operation IN ('INSERT', 'UPDATE', 'DELETE'))
                                        OR (l.relation = 'sample_point' AND l.operation = 'UPDATE'))), false)
            FROM logged AS l),
           (SELECT coalesce(array_agg(DISTINCT m.point_id ORDER BY m.point_id), '{}') FROM marked AS m)
    INTO not_points_only, dirty;
    UPDATE streetaudit.stats_state AS st
    SET model_id = stats_model, version = streetaudit.next_data_version(st.version), refreshed_at = now(),
        inputs_tracked_at = now()
    RETURNING st.version INTO new_version;
    IF incremental AND NOT not_points_only
       AND cardinality(dirty) <= (SELECT count(*) FROM api.point_elements) / 10 THEN
        PERFORM streetaudit.publish_points(dirty);
        RETURN QUERY SELECT new_version, 'incremental', cardinality(dirty)::bigint;
    ELSE
        PERFORM streetaudit.publish_all();
        RETURN QUERY SELECT new_version, 'full', (SELECT count(*) FROM api.point_elements);
    END IF;
END
$$;
COMMENT ON FUNCTION streetaudit.refresh_stats(bigint, boolean) IS
    'Recompute the published statistics and tile tables from one segmentation model (incremental: only what the changed points reach, when only points changed); returns the new data version, the mode (full, incremental) and the points recomputed.';

-- Why a refresh of this selection and these comparison parameters has work to do, or NULL
-- when it has none: what is published came from them, and no statement has written a
-- table the statistics read since (streetaudit.stats_input_change). NULL lets `stats
-- refresh` leave everything as it is, data version included.
CREATE OR REPLACE FUNCTION streetaudit.stats_refresh_reason(
    stats_model bigint, stats_provider text, stats_complete_only boolean, stats_holm text, stats_permutations integer
)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN st.inputs_tracked_at IS NULL THEN 'no refresh since changes are tracked'
        WHEN st.model_id IS DISTINCT FROM stats_model OR st.provider IS DISTINCT FROM stats_provider
             OR st.complete_only IS DISTINCT FROM stats_complete_only THEN 'the selection changed'
        WHEN st.holm_family IS DISTINCT FROM stats_holm OR st.permutations IS DISTINCT FROM stats_permutations
             THEN 'the comparison parameters changed'
        WHEN EXISTS (SELECT 1 FROM streetaudit.stats_input_change) THEN
            'inputs changed: ' || (SELECT string_agg(DISTINCT c.relation, ', ' ORDER BY c.relation)
                                   FROM streetaudit.stats_input_change AS c)
    END
    FROM streetaudit.stats_state AS st
$$;
COMMENT ON FUNCTION streetaudit.stats_refresh_reason(bigint, text, boolean, text, integer) IS
    'Why a stats refresh of this selection (model, provider, complete_only) and comparison (holm family, permutations) has work to do; NULL when what is published is already that.';

-- This file just ran again (it or a file before it changed), so the tile tables were made
-- anew: encode the pre-built tiles again, and where statistics are published give them a
-- new data version, so no cache serves a tile of the old definitions.
SELECT streetaudit.prebuild_tiles();
UPDATE streetaudit.stats_state SET version = streetaudit.next_data_version(version) WHERE model_id IS NOT NULL;
