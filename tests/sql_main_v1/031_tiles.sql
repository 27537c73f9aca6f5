-- Vector tiles: pg_tileserv function layers over the statistics.
--
-- Contract (pg_tileserv, martin, our API): api.<layer>(z integer, x integer, y integer, ...)
-- RETURNS bytea, STABLE PARALLEL SAFE, with a COMMENT. `properties` (comma-separated
-- attribute names, NULL = all) keeps only the named attributes: the others are NULL and
-- ST_AsMVT leaves NULL attributes out of a feature. `max_bytes` can only lower the 500 KB
-- budget every tile keeps. The layer inside each tile is named like the function
-- (api.segments, ...), as pg_tileserv names table layers.
--
-- Tiles read tables pre-built in web mercator by the stats refresh, so a tile costs an
-- index probe and ST_AsMVTGeom, never a transform. The functions are SECURITY DEFINER
-- with a fixed search_path: streetaudit_reader (and pg_tileserv running as it) may call
-- them without reading streetaudit.*, and cannot substitute objects of its own.

-- Web-mercator copies for tiles; low zooms read simplified geometries with means only.
CREATE MATERIALIZED VIEW IF NOT EXISTS streetaudit.segment_tile AS
    SELECT road_id, name, kind, length_m, n_points, building_mean, building_std, road_mean, road_std, sky_mean, sky_std, greenery_mean, greenery_std, sidewalk_mean, sidewalk_std, car_mean, car_std,
           ST_Transform(geom, 3857)::geometry(LineString, 3857) AS geom
    FROM api.segment_stats;
CREATE UNIQUE INDEX IF NOT EXISTS segment_tile_road_idx ON streetaudit.segment_tile (road_id);
CREATE INDEX IF NOT EXISTS segment_tile_geom_idx ON streetaudit.segment_tile USING gist (geom);

-- About a pixel at zoom 11 (76 m / 4096 * 4); what cannot be seen is not sent.
CREATE MATERIALIZED VIEW IF NOT EXISTS streetaudit.segment_overview AS
    SELECT road_id, name, kind, length_m, n_points, building_mean, road_mean, sky_mean, greenery_mean, sidewalk_mean, car_mean,
           ST_Simplify(geom, 20, true) AS geom
    FROM streetaudit.segment_tile;
CREATE UNIQUE INDEX IF NOT EXISTS segment_overview_road_idx ON streetaudit.segment_overview (road_id);
CREATE INDEX IF NOT EXISTS segment_overview_geom_idx ON streetaudit.segment_overview USING gist (geom);

CREATE MATERIALIZED VIEW IF NOT EXISTS streetaudit.point_tile AS
    SELECT point_id, road_id, n_images, building, road, sky, greenery, sidewalk, car,
           ST_Transform(geom, 3857)::geometry(Point, 3857) AS geom
    FROM api.point_elements;
CREATE UNIQUE INDEX IF NOT EXISTS point_tile_point_idx ON streetaudit.point_tile (point_id);
CREATE INDEX IF NOT EXISTS point_tile_geom_idx ON streetaudit.point_tile USING gist (geom);

CREATE MATERIALIZED VIEW IF NOT EXISTS streetaudit.area_tile AS
    SELECT area_id, area_name, kind, n_points, building_mean, building_std, building_median, road_mean, road_std, road_median, sky_mean, sky_std, sky_median, greenery_mean, greenery_std, greenery_median, sidewalk_mean, sidewalk_std, sidewalk_median, car_mean, car_std, car_median,
           ST_Transform(geom, 3857)::geometry(MultiPolygon, 3857) AS geom
    FROM api.area_stats
    WHERE area_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS area_tile_geom_idx ON streetaudit.area_tile USING gist (geom);

-- Which attributes and zooms each layer offers: the API validates `properties=` and
-- writes TileJSON from this, so it never has to guess from a tile.
-- Zooms below 14 (where the points layer starts) of segments and areas, encoded once by
-- the stats refresh for every tile that can hold a feature: overview tiles are the most
-- requested and the most expensive, they change only on refresh, and a city has a few
-- hundred of them at most. A tile not found here is computed.
CREATE TABLE IF NOT EXISTS streetaudit.prebuilt_tile (
    layer text NOT NULL,
    z integer NOT NULL,
    x integer NOT NULL,
    y integer NOT NULL,
    tile bytea NOT NULL,
    PRIMARY KEY (layer, z, x, y)
);

CREATE TABLE IF NOT EXISTS streetaudit.tile_layer (
    id text PRIMARY KEY,
    properties text[] NOT NULL,
    property_types text[] NOT NULL,
    minzoom integer NOT NULL,
    maxzoom integer NOT NULL,
    geometry_type text NOT NULL
);
INSERT INTO streetaudit.tile_layer VALUES
    ('api.segments', ARRAY['name', 'kind', 'length_m', 'n_points', 'building_mean', 'building_std', 'road_mean', 'road_std', 'sky_mean', 'sky_std', 'greenery_mean', 'greenery_std', 'sidewalk_mean', 'sidewalk_std', 'car_mean', 'car_std'],
     ARRAY['String', 'String', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number'], 0, 22, 'line'),
    ('api.points', ARRAY['road_id', 'n_images', 'building', 'road', 'sky', 'greenery', 'sidewalk', 'car'],
     ARRAY['Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number'], 14, 22, 'point'),
    ('api.areas', ARRAY['area_name', 'kind', 'n_points', 'building_mean', 'building_std', 'building_median', 'road_mean', 'road_std', 'road_median', 'sky_mean', 'sky_std', 'sky_median', 'greenery_mean', 'greenery_std', 'greenery_median', 'sidewalk_mean', 'sidewalk_std', 'sidewalk_median', 'car_mean', 'car_std', 'car_median'],
     ARRAY['String', 'String', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number', 'Number'], 0, 22, 'polygon')
ON CONFLICT (id) DO UPDATE
    SET properties = EXCLUDED.properties, property_types = EXCLUDED.property_types, minzoom = EXCLUDED.minzoom,
        maxzoom = EXCLUDED.maxzoom, geometry_type = EXCLUDED.geometry_type;
CREATE OR REPLACE VIEW api.tile_layers AS
    SELECT id, properties, property_types, minzoom, maxzoom, geometry_type FROM streetaudit.tile_layer;
COMMENT ON VIEW api.tile_layers IS
    'Attributes (MVT types String/Number) and zoom range of each tile function in api; the feature id (road_id, point_id, area_id) is the MVT feature id.';

-- The features of api.segments in one tile: at most `cap`, the length m-largest
-- first when `trimmed` (a tile over its byte budget is encoded again with fewer features).
CREATE OR REPLACE FUNCTION streetaudit.segments_mvt(z integer, x integer, y integer, keep text[], cap integer, trimmed boolean)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH t AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_TileEnvelope(z, x, y, margin => 64.0 / 4096) AS probe
    ), feat AS (
        (SELECT s.road_id,
               CASE WHEN keep IS NULL OR 'name' = ANY (keep) THEN s.name END AS name,
               CASE WHEN keep IS NULL OR 'kind' = ANY (keep) THEN s.kind END AS kind,
               CASE WHEN keep IS NULL OR 'length_m' = ANY (keep) THEN s.length_m END AS length_m,
               CASE WHEN keep IS NULL OR 'n_points' = ANY (keep) THEN s.n_points END AS n_points,
               CASE WHEN keep IS NULL OR 'building_mean' = ANY (keep) THEN s.building_mean END AS building_mean,
               CASE WHEN keep IS NULL OR 'building_std' = ANY (keep) THEN s.building_std END AS building_std,
               CASE WHEN keep IS NULL OR 'road_mean' = ANY (keep) THEN s.road_mean END AS road_mean,
               CASE WHEN keep IS NULL OR 'road_std' = ANY (keep) THEN s.road_std END AS road_std,
               CASE WHEN keep IS NULL OR 'sky_mean' = ANY (keep) THEN s.sky_mean END AS sky_mean,
               CASE WHEN keep IS NULL OR 'sky_std' = ANY (keep) THEN s.sky_std END AS sky_std,
               CASE WHEN keep IS NULL OR 'greenery_mean' = ANY (keep) THEN s.greenery_mean END AS greenery_mean,
               CASE WHEN keep IS NULL OR 'greenery_std' = ANY (keep) THEN s.greenery_std END AS greenery_std,
               CASE WHEN keep IS NULL OR 'sidewalk_mean' = ANY (keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               CASE WHEN keep IS NULL OR 'sidewalk_std' = ANY (keep) THEN s.sidewalk_std END AS sidewalk_std,
               CASE WHEN keep IS NULL OR 'car_mean' = ANY (keep) THEN s.car_mean END AS car_mean,
               CASE WHEN keep IS NULL OR 'car_std' = ANY (keep) THEN s.car_std END AS car_std,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.segment_tile AS s, t
        WHERE z >= 12 AND NOT trimmed AND s.geom && t.probe
        LIMIT cap)
        UNION ALL
        (SELECT s.road_id,
               CASE WHEN keep IS NULL OR 'name' = ANY (keep) THEN s.name END AS name,
               CASE WHEN keep IS NULL OR 'kind' = ANY (keep) THEN s.kind END AS kind,
               CASE WHEN keep IS NULL OR 'length_m' = ANY (keep) THEN s.length_m END AS length_m,
               CASE WHEN keep IS NULL OR 'n_points' = ANY (keep) THEN s.n_points END AS n_points,
               CASE WHEN keep IS NULL OR 'building_mean' = ANY (keep) THEN s.building_mean END AS building_mean,
               CASE WHEN keep IS NULL OR 'building_std' = ANY (keep) THEN s.building_std END AS building_std,
               CASE WHEN keep IS NULL OR 'road_mean' = ANY (keep) THEN s.road_mean END AS road_mean,
               CASE WHEN keep IS NULL OR 'road_std' = ANY (keep) THEN s.road_std END AS road_std,
               CASE WHEN keep IS NULL OR 'sky_mean' = ANY (keep) THEN s.sky_mean END AS sky_mean,
               CASE WHEN keep IS NULL OR 'sky_std' = ANY (keep) THEN s.sky_std END AS sky_std,
               CASE WHEN keep IS NULL OR 'greenery_mean' = ANY (keep) THEN s.greenery_mean END AS greenery_mean,
               CASE WHEN keep IS NULL OR 'greenery_std' = ANY (keep) THEN s.greenery_std END AS greenery_std,
               CASE WHEN keep IS NULL OR 'sidewalk_mean' = ANY (keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               CASE WHEN keep IS NULL OR 'sidewalk_std' = ANY (keep) THEN s.sidewalk_std END AS sidewalk_std,
               CASE WHEN keep IS NULL OR 'car_mean' = ANY (keep) THEN s.car_mean END AS car_mean,
               CASE WHEN keep IS NULL OR 'car_std' = ANY (keep) THEN s.car_std END AS car_std,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.segment_tile AS s, t
        WHERE z >= 12 AND trimmed AND s.geom && t.probe
        ORDER BY s.length_m DESC
        LIMIT cap)
        UNION ALL
        (SELECT s.road_id,
               CASE WHEN keep IS NULL OR 'name' = ANY (keep) THEN s.name END AS name,
               CASE WHEN keep IS NULL OR 'kind' = ANY (keep) THEN s.kind END AS kind,
               CASE WHEN keep IS NULL OR 'length_m' = ANY (keep) THEN s.length_m END AS length_m,
               CASE WHEN keep IS NULL OR 'n_points' = ANY (keep) THEN s.n_points END AS n_points,
               CASE WHEN keep IS NULL OR 'building_mean' = ANY (keep) THEN s.building_mean END AS building_mean,
               NULL::double precision AS building_std,
               CASE WHEN keep IS NULL OR 'road_mean' = ANY (keep) THEN s.road_mean END AS road_mean,
               NULL::double precision AS road_std,
               CASE WHEN keep IS NULL OR 'sky_mean' = ANY (keep) THEN s.sky_mean END AS sky_mean,
               NULL::double precision AS sky_std,
               CASE WHEN keep IS NULL OR 'greenery_mean' = ANY (keep) THEN s.greenery_mean END AS greenery_mean,
               NULL::double precision AS greenery_std,
               CASE WHEN keep IS NULL OR 'sidewalk_mean' = ANY (keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               NULL::double precision AS sidewalk_std,
               CASE WHEN keep IS NULL OR 'car_mean' = ANY (keep) THEN s.car_mean END AS car_mean,
               NULL::double precision AS car_std,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.segment_overview AS s, t
        WHERE z < 12 AND NOT trimmed AND s.geom && t.probe
        LIMIT cap)
        UNION ALL
        (SELECT s.road_id,
               CASE WHEN keep IS NULL OR 'name' = ANY (keep) THEN s.name END AS name,
               CASE WHEN keep IS NULL OR 'kind' = ANY (keep) THEN s.kind END AS kind,
               CASE WHEN keep IS NULL OR 'length_m' = ANY (keep) THEN s.length_m END AS length_m,
               CASE WHEN keep IS NULL OR 'n_points' = ANY (keep) THEN s.n_points END AS n_points,
               CASE WHEN keep IS NULL OR 'building_mean' = ANY (keep) THEN s.building_mean END AS building_mean,
               NULL::double precision AS building_std,
               CASE WHEN keep IS NULL OR 'road_mean' = ANY (keep) THEN s.road_mean END AS road_mean,
               NULL::double precision AS road_std,
               CASE WHEN keep IS NULL OR 'sky_mean' = ANY (keep) THEN s.sky_mean END AS sky_mean,
               NULL::double precision AS sky_std,
               CASE WHEN keep IS NULL OR 'greenery_mean' = ANY (keep) THEN s.greenery_mean END AS greenery_mean,
               NULL::double precision AS greenery_std,
               CASE WHEN keep IS NULL OR 'sidewalk_mean' = ANY (keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               NULL::double precision AS sidewalk_std,
               CASE WHEN keep IS NULL OR 'car_mean' = ANY (keep) THEN s.car_mean END AS car_mean,
               NULL::double precision AS car_std,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.segment_overview AS s, t
        WHERE z < 12 AND trimmed AND s.geom && t.probe
        ORDER BY s.length_m DESC
        LIMIT cap)
    )
    SELECT coalesce(ST_AsMVT(feat, 'api.segments', 4096, 'geom', 'road_id'), ''::bytea)
    FROM feat
    WHERE geom IS NOT NULL
$$;

-- Road segments with n_points and the mean and std of each element (zoom < 12: simplified, means only; zoom < 14: pre-built).
-- A tile never exceeds max_bytes (at most, and by default, 500 KB) nor 50000 features:
-- an oversized tile is encoded again with proportionally fewer, largest-first features.
CREATE OR REPLACE FUNCTION api.segments(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    keep text[] := string_to_array(properties, ',');
    budget integer := least(coalesce(max_bytes, 500000), 500000);
    cap integer := 50000;
    tile bytea;
BEGIN
    IF z < 14 AND keep IS NULL AND budget = 500000 THEN
        SELECT p.tile INTO tile FROM streetaudit.prebuilt_tile AS p
        WHERE p.layer = 'segments' AND p.z = $1 AND p.x = $2 AND p.y = $3;
        IF FOUND THEN
            RETURN tile;
        END IF;
    END IF;
    tile := streetaudit.segments_mvt(z, x, y, keep, cap, false);
    IF octet_length(tile) > budget THEN
        IF z >= 12 THEN
            SELECT least(cap, count(*)) INTO cap FROM streetaudit.segment_tile
        WHERE geom && ST_TileEnvelope(z, x, y, margin => 64.0 / 4096);
        ELSE
            SELECT least(cap, count(*)) INTO cap FROM streetaudit.segment_overview
        WHERE geom && ST_TileEnvelope(z, x, y, margin => 64.0 / 4096);
        END IF;
        LOOP
            cap := greatest(1, floor(cap * 0.9 * budget / octet_length(tile))::integer);
            tile := streetaudit.segments_mvt(z, x, y, keep, cap, true);
            EXIT WHEN octet_length(tile) <= budget OR cap = 1;
        END LOOP;
        IF octet_length(tile) > budget THEN
            tile := ''::bytea;
        END IF;
    END IF;
    RETURN tile;
END
$$;
COMMENT ON FUNCTION api.segments(integer, integer, integer, text, integer) IS
    'Road segments with n_points and the mean and std of each element (zoom < 12: simplified, means only; zoom < 14: pre-built). properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- The features of api.points in one tile: at most `cap`, the n images-largest
-- first when `trimmed` (a tile over its byte budget is encoded again with fewer features).
CREATE OR REPLACE FUNCTION streetaudit.points_mvt(z integer, x integer, y integer, keep text[], cap integer, trimmed boolean)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH t AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_TileEnvelope(z, x, y, margin => 64.0 / 4096) AS probe
    ), feat AS (
        (SELECT s.point_id,
               CASE WHEN keep IS NULL OR 'road_id' = ANY (keep) THEN s.road_id END AS road_id,
               CASE WHEN keep IS NULL OR 'n_images' = ANY (keep) THEN s.n_images END AS n_images,
               CASE WHEN keep IS NULL OR 'building' = ANY (keep) THEN s.building END AS building,
               CASE WHEN keep IS NULL OR 'road' = ANY (keep) THEN s.road END AS road,
               CASE WHEN keep IS NULL OR 'sky' = ANY (keep) THEN s.sky END AS sky,
               CASE WHEN keep IS NULL OR 'greenery' = ANY (keep) THEN s.greenery END AS greenery,
               CASE WHEN keep IS NULL OR 'sidewalk' = ANY (keep) THEN s.sidewalk END AS sidewalk,
               CASE WHEN keep IS NULL OR 'car' = ANY (keep) THEN s.car END AS car,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.point_tile AS s, t
        WHERE z >= 14 AND NOT trimmed AND s.geom && t.probe
        LIMIT cap)
        UNION ALL
        (SELECT s.point_id,
               CASE WHEN keep IS NULL OR 'road_id' = ANY (keep) THEN s.road_id END AS road_id,
               CASE WHEN keep IS NULL OR 'n_images' = ANY (keep) THEN s.n_images END AS n_images,
               CASE WHEN keep IS NULL OR 'building' = ANY (keep) THEN s.building END AS building,
               CASE WHEN keep IS NULL OR 'road' = ANY (keep) THEN s.road END AS road,
               CASE WHEN keep IS NULL OR 'sky' = ANY (keep) THEN s.sky END AS sky,
               CASE WHEN keep IS NULL OR 'greenery' = ANY (keep) THEN s.greenery END AS greenery,
               CASE WHEN keep IS NULL OR 'sidewalk' = ANY (keep) THEN s.sidewalk END AS sidewalk,
               CASE WHEN keep IS NULL OR 'car' = ANY (keep) THEN s.car END AS car,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.point_tile AS s, t
        WHERE z >= 14 AND trimmed AND s.geom && t.probe
        ORDER BY s.n_images DESC
        LIMIT cap)
    )
    SELECT coalesce(ST_AsMVT(feat, 'api.points', 4096, 'geom', 'point_id'), ''::bytea)
    FROM feat
    WHERE geom IS NOT NULL
$$;

-- Sample points with the mean share of each element over their images; zoom >= 14 only (empty below).
-- A tile never exceeds max_bytes (at most, and by default, 500 KB) nor 20000 features:
-- an oversized tile is encoded again with proportionally fewer, largest-first features.
CREATE OR REPLACE FUNCTION api.points(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    keep text[] := string_to_array(properties, ',');
    budget integer := least(coalesce(max_bytes, 500000), 500000);
    cap integer := 20000;
    tile bytea;
BEGIN
    tile := streetaudit.points_mvt(z, x, y, keep, cap, false);
    IF octet_length(tile) > budget THEN
        SELECT least(cap, count(*)) INTO cap FROM streetaudit.point_tile
        WHERE geom && ST_TileEnvelope(z, x, y, margin => 64.0 / 4096);
        LOOP
            cap := greatest(1, floor(cap * 0.9 * budget / octet_length(tile))::integer);
            tile := streetaudit.points_mvt(z, x, y, keep, cap, true);
            EXIT WHEN octet_length(tile) <= budget OR cap = 1;
        END LOOP;
        IF octet_length(tile) > budget THEN
            tile := ''::bytea;
        END IF;
    END IF;
    RETURN tile;
END
$$;
COMMENT ON FUNCTION api.points(integer, integer, integer, text, integer) IS
    'Sample points with the mean share of each element over their images; zoom >= 14 only (empty below). properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- The features of api.areas in one tile: at most `cap`, the n points-largest
-- first when `trimmed` (a tile over its byte budget is encoded again with fewer features).
CREATE OR REPLACE FUNCTION streetaudit.areas_mvt(z integer, x integer, y integer, keep text[], cap integer, trimmed boolean)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH t AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_TileEnvelope(z, x, y, margin => 64.0 / 4096) AS probe
    ), feat AS (
        (SELECT s.area_id,
               CASE WHEN keep IS NULL OR 'area_name' = ANY (keep) THEN s.area_name END AS area_name,
               CASE WHEN keep IS NULL OR 'kind' = ANY (keep) THEN s.kind END AS kind,
               CASE WHEN keep IS NULL OR 'n_points' = ANY (keep) THEN s.n_points END AS n_points,
               CASE WHEN keep IS NULL OR 'building_mean' = ANY (keep) THEN s.building_mean END AS building_mean,
               CASE WHEN keep IS NULL OR 'building_std' = ANY (keep) THEN s.building_std END AS building_std,
               CASE WHEN keep IS NULL OR 'building_median' = ANY (keep) THEN s.building_median END AS building_median,
               CASE WHEN keep IS NULL OR 'road_mean' = ANY (keep) THEN s.road_mean END AS road_mean,
               CASE WHEN keep IS NULL OR 'road_std' = ANY (keep) THEN s.road_std END AS road_std,
               CASE WHEN keep IS NULL OR 'road_median' = ANY (keep) THEN s.road_median END AS road_median,
               CASE WHEN keep IS NULL OR 'sky_mean' = ANY (keep) THEN s.sky_mean END AS sky_mean,
               CASE WHEN keep IS NULL OR 'sky_std' = ANY (keep) THEN s.sky_std END AS sky_std,
               CASE WHEN keep IS NULL OR 'sky_median' = ANY (keep) THEN s.sky_median END AS sky_median,
               CASE WHEN keep IS NULL OR 'greenery_mean' = ANY (keep) THEN s.greenery_mean END AS greenery_mean,
               CASE WHEN keep IS NULL OR 'greenery_std' = ANY (keep) THEN s.greenery_std END AS greenery_std,
               CASE WHEN keep IS NULL OR 'greenery_median' = ANY (keep) THEN s.greenery_median END AS greenery_median,
               CASE WHEN keep IS NULL OR 'sidewalk_mean' = ANY (keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               CASE WHEN keep IS NULL OR 'sidewalk_std' = ANY (keep) THEN s.sidewalk_std END AS sidewalk_std,
               CASE WHEN keep IS NULL OR 'sidewalk_median' = ANY (keep) THEN s.sidewalk_median END AS sidewalk_median,
               CASE WHEN keep IS NULL OR 'car_mean' = ANY (keep) THEN s.car_mean END AS car_mean,
               CASE WHEN keep IS NULL OR 'car_std' = ANY (keep) THEN s.car_std END AS car_std,
               CASE WHEN keep IS NULL OR 'car_median' = ANY (keep) THEN s.car_median END AS car_median,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.area_tile AS s, t
        WHERE true AND NOT trimmed AND s.geom && t.probe
        LIMIT cap)
        UNION ALL
        (SELECT s.area_id,
               CASE WHEN keep IS NULL OR 'area_name' = ANY (keep) THEN s.area_name END AS area_name,
               CASE WHEN keep IS NULL OR 'kind' = ANY (keep) THEN s.kind END AS kind,
               CASE WHEN keep IS NULL OR 'n_points' = ANY (keep) THEN s.n_points END AS n_points,
               CASE WHEN keep IS NULL OR 'building_mean' = ANY (keep) THEN s.building_mean END AS building_mean,
               CASE WHEN keep IS NULL OR 'building_std' = ANY (keep) THEN s.building_std END AS building_std,
               CASE WHEN keep IS NULL OR 'building_median' = ANY (keep) THEN s.building_median END AS building_median,
               CASE WHEN keep IS NULL OR 'road_mean' = ANY (keep) THEN s.road_mean END AS road_mean,
               CASE WHEN keep IS NULL OR 'road_std' = ANY (keep) THEN s.road_std END AS road_std,
               CASE WHEN keep IS NULL OR 'road_median' = ANY (keep) THEN s.road_median END AS road_median,
               CASE WHEN keep IS NULL OR 'sky_mean' = ANY (keep) THEN s.sky_mean END AS sky_mean,
               CASE WHEN keep IS NULL OR 'sky_std' = ANY (keep) THEN s.sky_std END AS sky_std,
               CASE WHEN keep IS NULL OR 'sky_median' = ANY (keep) THEN s.sky_median END AS sky_median,
               CASE WHEN keep IS NULL OR 'greenery_mean' = ANY (keep) THEN s.greenery_mean END AS greenery_mean,
               CASE WHEN keep IS NULL OR 'greenery_std' = ANY (keep) THEN s.greenery_std END AS greenery_std,
               CASE WHEN keep IS NULL OR 'greenery_median' = ANY (keep) THEN s.greenery_median END AS greenery_median,
               CASE WHEN keep IS NULL OR 'sidewalk_mean' = ANY (keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               CASE WHEN keep IS NULL OR 'sidewalk_std' = ANY (keep) THEN s.sidewalk_std END AS sidewalk_std,
               CASE WHEN keep IS NULL OR 'sidewalk_median' = ANY (keep) THEN s.sidewalk_median END AS sidewalk_median,
               CASE WHEN keep IS NULL OR 'car_mean' = ANY (keep) THEN s.car_mean END AS car_mean,
               CASE WHEN keep IS NULL OR 'car_std' = ANY (keep) THEN s.car_std END AS car_std,
               CASE WHEN keep IS NULL OR 'car_median' = ANY (keep) THEN s.car_median END AS car_median,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.area_tile AS s, t
        WHERE true AND trimmed AND s.geom && t.probe
        ORDER BY s.n_points DESC
        LIMIT cap)
    )
    SELECT coalesce(ST_AsMVT(feat, 'api.areas', 4096, 'geom', 'area_id'), ''::bytea)
    FROM feat
    WHERE geom IS NOT NULL
$$;

-- Heritage areas with n_points and the mean, std and median of each element (zoom < 14: pre-built).
-- A tile never exceeds max_bytes (at most, and by default, 500 KB) nor 5000 features:
-- an oversized tile is encoded again with proportionally fewer, largest-first features.
CREATE OR REPLACE FUNCTION api.areas(
    z integer, x integer, y integer, properties text DEFAULT NULL, max_bytes integer DEFAULT 500000
)
RETURNS bytea
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    keep text[] := string_to_array(properties, ',');
    budget integer := least(coalesce(max_bytes, 500000), 500000);
    cap integer := 5000;
    tile bytea;
BEGIN
    IF z < 14 AND keep IS NULL AND budget = 500000 THEN
        SELECT p.tile INTO tile FROM streetaudit.prebuilt_tile AS p
        WHERE p.layer = 'areas' AND p.z = $1 AND p.x = $2 AND p.y = $3;
        IF FOUND THEN
            RETURN tile;
        END IF;
    END IF;
    tile := streetaudit.areas_mvt(z, x, y, keep, cap, false);
    IF octet_length(tile) > budget THEN
        SELECT least(cap, count(*)) INTO cap FROM streetaudit.area_tile
        WHERE geom && ST_TileEnvelope(z, x, y, margin => 64.0 / 4096);
        LOOP
            cap := greatest(1, floor(cap * 0.9 * budget / octet_length(tile))::integer);
            tile := streetaudit.areas_mvt(z, x, y, keep, cap, true);
            EXIT WHEN octet_length(tile) <= budget OR cap = 1;
        END LOOP;
        IF octet_length(tile) > budget THEN
            tile := ''::bytea;
        END IF;
    END IF;
    RETURN tile;
END
$$;
COMMENT ON FUNCTION api.areas(integer, integer, integer, text, integer) IS
    'Heritage areas with n_points and the mean, std and median of each element (zoom < 14: pre-built). properties: comma-separated attributes to keep; max_bytes: lower the 500 KB budget.';

-- Refresh everything the readers see from one model, in dependency order, and bump the
-- data version. The caller commits (the stats flow writes the comparison in the same
-- transaction, so readers never see statistics of two models mixed).
CREATE OR REPLACE FUNCTION streetaudit.refresh_stats(stats_model bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    new_version bigint;
BEGIN
    UPDATE streetaudit.stats_state
    SET model_id = stats_model,
        version = greatest(version + 1, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint),
        refreshed_at = now()
    RETURNING version INTO new_version;
    REFRESH MATERIALIZED VIEW api.point_elements;
    REFRESH MATERIALIZED VIEW api.segment_stats;
    REFRESH MATERIALIZED VIEW api.area_stats;
    REFRESH MATERIALIZED VIEW streetaudit.segment_tile;
    REFRESH MATERIALIZED VIEW streetaudit.segment_overview;
    REFRESH MATERIALIZED VIEW streetaudit.point_tile;
    REFRESH MATERIALIZED VIEW streetaudit.area_tile;
    DELETE FROM streetaudit.prebuilt_tile;
    -- Every tile of zoom 0-13 whose buffered envelope meets the data.
    INSERT INTO streetaudit.prebuilt_tile (layer, z, x, y, tile)
    WITH extent AS (
        SELECT ST_Extent(geom) AS b
        FROM (SELECT geom FROM streetaudit.segment_tile UNION ALL SELECT geom FROM streetaudit.area_tile) AS g
    ), zoom AS (
        SELECT z, 40075016.685578488 / 2 ^ z AS size, b, 2 ^ z - 1 AS last
        FROM generate_series(0, 13) AS z, extent
        WHERE b IS NOT NULL
    ), address AS (
        SELECT zoom.z, tx AS x, ty AS y
        FROM zoom,
             generate_series(
                 greatest(0, floor((ST_XMin(b) - size * 64 / 4096 + 20037508.342789244) / size))::integer,
                 least(last, floor((ST_XMax(b) + size * 64 / 4096 + 20037508.342789244) / size))::integer) AS tx,
             generate_series(
                 greatest(0, floor((20037508.342789244 - ST_YMax(b) - size * 64 / 4096) / size))::integer,
                 least(last, floor((20037508.342789244 - ST_YMin(b) + size * 64 / 4096) / size))::integer) AS ty
    )
    SELECT layer, a.z, a.x, a.y,
           CASE layer
               WHEN 'segments' THEN streetaudit.segments_mvt(a.z, a.x, a.y, NULL, 50000, false)
               ELSE streetaudit.areas_mvt(a.z, a.x, a.y, NULL, 5000, false)
           END
    FROM address AS a, (VALUES ('segments'), ('areas')) AS l (layer);
    -- An over-budget tile is left to the functions, which trim it.
    DELETE FROM streetaudit.prebuilt_tile WHERE octet_length(tile) > 500000;
    RETURN new_version;
END
$$;
COMMENT ON FUNCTION streetaudit.refresh_stats(bigint) IS
    'Recompute the published statistics and tile tables from one segmentation model; returns the new data version.';

-- Explicit grants (default privileges cover new objects of the migrating role only).
GRANT SELECT ON ALL TABLES IN SCHEMA api TO streetaudit_reader;
GRANT EXECUTE ON FUNCTION api.segments(integer, integer, integer, text, integer) TO streetaudit_reader;
GRANT EXECUTE ON FUNCTION api.points(integer, integer, integer, text, integer) TO streetaudit_reader;
GRANT EXECUTE ON FUNCTION api.areas(integer, integer, integer, text, integer) TO streetaudit_reader;
-- The helpers run inside the SECURITY DEFINER functions only.
REVOKE EXECUTE ON FUNCTION streetaudit.segments_mvt(integer, integer, integer, text[], integer, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.points_mvt(integer, integer, integer, text[], integer, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION streetaudit.areas_mvt(integer, integer, integer, text[], integer, boolean) FROM PUBLIC;
