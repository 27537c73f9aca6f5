-- Vector tiles: pg_tileserv function layers over the statistics.
--
-- Contract (pg_tileserv, martin, our API): api.<layer>(z integer, x integer, y integer, ...)
-- RETURNS bytea, STABLE PARALLEL SAFE, with a COMMENT. `properties` (comma-separated
-- attribute names, NULL = all) keeps only the named attributes. `max_bytes` can only lower
-- the 500 KB budget every tile keeps. The layer inside each tile is named like the function
-- (api.roads, ...), as pg_tileserv names table layers.
--
-- A layer is three things, each written once:
--   * its tile table (a materialized view in web mercator, made by the stats refresh): the
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
CREATE MATERIALIZED VIEW streetaudit.road_features AS
    SELECT road_id, name, kind, length_m, n_points,
           building_mean, building_std, road_mean, road_std, sky_mean, sky_std,
           greenery_mean, greenery_std, sidewalk_mean, sidewalk_std, car_mean, car_std,
           ST_Transform(geom, 3857)::geometry(LineString, 3857) AS geom
    FROM api.road_stats;
CREATE UNIQUE INDEX IF NOT EXISTS road_features_road_idx ON streetaudit.road_features (road_id);
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
CREATE MATERIALIZED VIEW streetaudit.road_overview AS
    WITH placed AS (
        SELECT zoom.z, zoom.unit_m, f.*,
               floor(ST_X(mid.p) / (zoom.unit_m * zoom.cell)) AS cx,
               floor(ST_Y(mid.p) / (zoom.unit_m * zoom.cell)) AS cy
        FROM streetaudit.road_features AS f
        CROSS JOIN LATERAL (SELECT ST_LineInterpolatePoint(f.geom, 0.5) AS p) AS mid
        -- unit_m: one tile unit (1/4096 of the tile) at zoom z; cell: a cell's side in units.
        CROSS JOIN (
            SELECT z, 40075016.685578488 / 2 ^ z / 4096 AS unit_m, 128 AS cell
            FROM generate_series(0, 13) AS z
        ) AS zoom
    ), streets AS (
        -- First each street of a group (its roads of one name) as one line: a named street
        -- is a path, so ST_LineMerge joins it through the junctions that split it into
        -- roads, where merging the whole group would stop at every crossing.
        SELECT min(road_id) AS road_id, z, unit_m, cx, cy, kind, n_points > 0 AS has_data, name,
               sum(length_m) AS length_m,
               sum(n_points)::integer AS n_points,
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
               count(*)::integer AS n_roads,
               ST_LineMerge(ST_Collect(geom)) AS geom
        FROM placed
        GROUP BY z, unit_m, cx, cy, kind, n_points > 0, name
    ), grouped AS (
        SELECT min(road_id) AS road_id, z, unit_m,
               (array_agg(name ORDER BY length_m DESC, road_id) FILTER (WHERE name IS NOT NULL))[1] AS name,
               kind,
               sum(length_m) AS length_m,
               sum(n_points)::integer AS n_points,
               sum(building_s1) AS building_s1, sum(building_s2) AS building_s2, sum(building_ss) AS building_ss,
               sum(road_s1) AS road_s1, sum(road_s2) AS road_s2, sum(road_ss) AS road_ss,
               sum(sky_s1) AS sky_s1, sum(sky_s2) AS sky_s2, sum(sky_ss) AS sky_ss,
               sum(greenery_s1) AS greenery_s1, sum(greenery_s2) AS greenery_s2, sum(greenery_ss) AS greenery_ss,
               sum(sidewalk_s1) AS sidewalk_s1, sum(sidewalk_s2) AS sidewalk_s2, sum(sidewalk_ss) AS sidewalk_ss,
               sum(car_s1) AS car_s1, sum(car_s2) AS car_s2, sum(car_ss) AS car_ss,
               sum(n_roads)::integer AS n_roads,
               -- Streets may be multi-lines: collected, they are a collection; its lines, merged.
               ST_Simplify(ST_LineMerge(ST_CollectionExtract(ST_Collect(geom), 2)), 2 * unit_m, true) AS geom
        FROM streets
        GROUP BY z, unit_m, cx, cy, kind, has_data
    )
    SELECT road_id, z, name, kind, length_m, n_points,
           round((building_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS building_mean,
           CASE WHEN z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (building_ss + building_s2 - building_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS building_std,
           round((road_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS road_mean,
           CASE WHEN z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (road_ss + road_s2 - road_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS road_std,
           round((sky_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS sky_mean,
           CASE WHEN z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (sky_ss + sky_s2 - sky_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS sky_std,
           round((greenery_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS greenery_mean,
           CASE WHEN z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (greenery_ss + greenery_s2 - greenery_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS greenery_std,
           round((sidewalk_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS sidewalk_mean,
           CASE WHEN z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (sidewalk_ss + sidewalk_s2 - sidewalk_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS sidewalk_std,
           round((car_s1 / nullif(n_points, 0))::numeric, 3)::double precision AS car_mean,
           CASE WHEN z >= 12 AND n_points > 1 THEN round(sqrt(greatest(0,
               (car_ss + car_s2 - car_s1 ^ 2 / n_points) / (n_points - 1)))::numeric, 3)::double precision END AS car_std,
           n_roads,
           -- A group shorter than two tile units would vanish when the tile is encoded: it is
           -- drawn as a two-unit dash at its centre instead, so it still shows and counts.
           CASE WHEN ST_Length(geom) >= 2 * unit_m THEN geom
                ELSE ST_MakeLine(ST_Translate(ST_Centroid(geom), -unit_m, 0), ST_Translate(ST_Centroid(geom), unit_m, 0))
           END AS geom
    FROM grouped;
CREATE UNIQUE INDEX IF NOT EXISTS road_overview_road_idx ON streetaudit.road_overview (z, road_id);
CREATE INDEX IF NOT EXISTS road_overview_geom_idx ON streetaudit.road_overview USING gist (geom);
COMMENT ON MATERIALIZED VIEW streetaudit.road_overview IS
    'Roads generalised per zoom < 14: merged by kind, data or not, and 1/32-tile cell; sums, point-weighted means and (zoom 12-13) pooled std, 3 decimals; n_roads merged.';

CREATE MATERIALIZED VIEW streetaudit.point_features AS
    SELECT point_id, road_id, n_images, building, road, sky, greenery, sidewalk, car,
           ST_Transform(geom, 3857)::geometry(Point, 3857) AS geom
    FROM api.point_elements;
CREATE UNIQUE INDEX IF NOT EXISTS point_features_point_idx ON streetaudit.point_features (point_id);
CREATE INDEX IF NOT EXISTS point_features_geom_idx ON streetaudit.point_features USING gist (geom);

CREATE MATERIALIZED VIEW streetaudit.area_features AS
    SELECT area_id, area_name, kind, n_points,
           building_mean, building_std, building_median, road_mean, road_std, road_median,
           sky_mean, sky_std, sky_median, greenery_mean, greenery_std, greenery_median,
           sidewalk_mean, sidewalk_std, sidewalk_median, car_mean, car_std, car_median,
           ST_Transform(geom, 3857)::geometry(MultiPolygon, 3857) AS geom
    FROM api.area_stats
    WHERE area_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS area_features_area_idx ON streetaudit.area_features (area_id);
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
-- features, the largest first when `trimmed`. Identifiers in the query come from the
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
        geom_column, CASE WHEN trimmed THEN format('ORDER BY s.%I DESC', src.largest_first) ELSE '' END)
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
      AND a.attname NOT IN ('road_id', 'z', 'n_roads', 'geom')
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

-- Refresh everything the readers see from one model, in dependency order, and bump the
-- data version. The caller commits (the stats flow writes the comparison in the same
-- transaction, so readers never see statistics of two models mixed).
--
-- Publishing never blocks a reader: CONCURRENTLY builds each view's new rows beside the
-- published ones and changes only the rows that differ, under an EXCLUSIVE lock that
-- readers' ACCESS SHARE does not conflict with (a plain REFRESH takes ACCESS EXCLUSIVE and
-- holds it until the caller commits, scipy's comparison included, stopping every tile and
-- /stats request). Readers see the old version, whole, until the commit, then the new
-- one: each matview has a unique index for this (on its feature or area id).
CREATE OR REPLACE FUNCTION streetaudit.refresh_stats(stats_model bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    new_version bigint;
BEGIN
    -- First, before any data is read: a change committed from here on stays logged for the
    -- next refresh (see streetaudit.stats_refresh_reason).
    DELETE FROM streetaudit.stats_input_change;
    UPDATE streetaudit.stats_state
    SET model_id = stats_model, version = streetaudit.next_data_version(version), refreshed_at = now(),
        inputs_tracked_at = now()
    RETURNING version INTO new_version;
    REFRESH MATERIALIZED VIEW CONCURRENTLY api.point_elements;
    REFRESH MATERIALIZED VIEW CONCURRENTLY api.road_stats;
    REFRESH MATERIALIZED VIEW CONCURRENTLY api.area_stats;
    REFRESH MATERIALIZED VIEW CONCURRENTLY api.street_stats;
    REFRESH MATERIALIZED VIEW CONCURRENTLY streetaudit.road_features;
    REFRESH MATERIALIZED VIEW CONCURRENTLY streetaudit.road_overview;
    REFRESH MATERIALIZED VIEW CONCURRENTLY streetaudit.point_features;
    REFRESH MATERIALIZED VIEW CONCURRENTLY streetaudit.area_features;
    REFRESH MATERIALIZED VIEW CONCURRENTLY streetaudit.street_features;
    PERFORM streetaudit.prebuild_tiles();
    RETURN new_version;
END
$$;
COMMENT ON FUNCTION streetaudit.refresh_stats(bigint) IS
    'Recompute the published statistics and tile tables from one segmentation model; returns the new data version.';

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
