-- Vector tiles: pg_tileserv function layers over the statistics.
--
-- Contract (pg_tileserv, martin, our API): api.<layer>(z integer, x integer, y integer, ...)
-- RETURNS bytea, STABLE PARALLEL SAFE, with a COMMENT. `properties` (comma-separated
-- attribute names, NULL = all) keeps only the named attributes: the others are NULL and
-- ST_AsMVT leaves NULL attributes out of a feature. The layer inside each tile is named
-- like the function (api.segments, ...), as pg_tileserv names table layers.
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

-- Roads with their statistics. Below zoom 12 simplified geometry and means only.
CREATE OR REPLACE FUNCTION api.segments(z integer, x integer, y integer, properties text DEFAULT NULL)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    WITH t AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_TileEnvelope(z, x, y, margin => 64.0 / 4096) AS probe,
               string_to_array(properties, ',') AS keep
    ), feat AS (
        (SELECT s.road_id,
               CASE WHEN t.keep IS NULL OR 'name' = ANY (t.keep) THEN s.name END AS name,
               CASE WHEN t.keep IS NULL OR 'kind' = ANY (t.keep) THEN s.kind END AS kind,
               CASE WHEN t.keep IS NULL OR 'length_m' = ANY (t.keep) THEN s.length_m END AS length_m,
               CASE WHEN t.keep IS NULL OR 'n_points' = ANY (t.keep) THEN s.n_points END AS n_points,
               CASE WHEN t.keep IS NULL OR 'building_mean' = ANY (t.keep) THEN s.building_mean END AS building_mean,
               CASE WHEN t.keep IS NULL OR 'building_std' = ANY (t.keep) THEN s.building_std END AS building_std,
               CASE WHEN t.keep IS NULL OR 'road_mean' = ANY (t.keep) THEN s.road_mean END AS road_mean,
               CASE WHEN t.keep IS NULL OR 'road_std' = ANY (t.keep) THEN s.road_std END AS road_std,
               CASE WHEN t.keep IS NULL OR 'sky_mean' = ANY (t.keep) THEN s.sky_mean END AS sky_mean,
               CASE WHEN t.keep IS NULL OR 'sky_std' = ANY (t.keep) THEN s.sky_std END AS sky_std,
               CASE WHEN t.keep IS NULL OR 'greenery_mean' = ANY (t.keep) THEN s.greenery_mean END AS greenery_mean,
               CASE WHEN t.keep IS NULL OR 'greenery_std' = ANY (t.keep) THEN s.greenery_std END AS greenery_std,
               CASE WHEN t.keep IS NULL OR 'sidewalk_mean' = ANY (t.keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               CASE WHEN t.keep IS NULL OR 'sidewalk_std' = ANY (t.keep) THEN s.sidewalk_std END AS sidewalk_std,
               CASE WHEN t.keep IS NULL OR 'car_mean' = ANY (t.keep) THEN s.car_mean END AS car_mean,
               CASE WHEN t.keep IS NULL OR 'car_std' = ANY (t.keep) THEN s.car_std END AS car_std,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.segment_tile AS s, t
        WHERE z >= 12 AND s.geom && t.probe
        LIMIT 50000)
        UNION ALL
        (SELECT s.road_id,
               CASE WHEN t.keep IS NULL OR 'name' = ANY (t.keep) THEN s.name END AS name,
               CASE WHEN t.keep IS NULL OR 'kind' = ANY (t.keep) THEN s.kind END AS kind,
               CASE WHEN t.keep IS NULL OR 'length_m' = ANY (t.keep) THEN s.length_m END AS length_m,
               CASE WHEN t.keep IS NULL OR 'n_points' = ANY (t.keep) THEN s.n_points END AS n_points,
               CASE WHEN t.keep IS NULL OR 'building_mean' = ANY (t.keep) THEN s.building_mean END AS building_mean,
               NULL::double precision AS building_std,
               CASE WHEN t.keep IS NULL OR 'road_mean' = ANY (t.keep) THEN s.road_mean END AS road_mean,
               NULL::double precision AS road_std,
               CASE WHEN t.keep IS NULL OR 'sky_mean' = ANY (t.keep) THEN s.sky_mean END AS sky_mean,
               NULL::double precision AS sky_std,
               CASE WHEN t.keep IS NULL OR 'greenery_mean' = ANY (t.keep) THEN s.greenery_mean END AS greenery_mean,
               NULL::double precision AS greenery_std,
               CASE WHEN t.keep IS NULL OR 'sidewalk_mean' = ANY (t.keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               NULL::double precision AS sidewalk_std,
               CASE WHEN t.keep IS NULL OR 'car_mean' = ANY (t.keep) THEN s.car_mean END AS car_mean,
               NULL::double precision AS car_std,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.segment_overview AS s, t
        WHERE z < 12 AND s.geom && t.probe
        LIMIT 50000)
    )
    SELECT coalesce(ST_AsMVT(feat, 'api.segments', 4096, 'geom', 'road_id'), ''::bytea)
    FROM feat
    WHERE geom IS NOT NULL
$$;
COMMENT ON FUNCTION api.segments(integer, integer, integer, text) IS
    'Road segments with n_points and the mean and std of each element (zoom < 12: simplified, means only). properties: comma-separated attributes to keep.';

-- Sample points with their element values; only from zoom 14, where they can be told apart.
CREATE OR REPLACE FUNCTION api.points(z integer, x integer, y integer, properties text DEFAULT NULL)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    WITH t AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_TileEnvelope(z, x, y, margin => 64.0 / 4096) AS probe,
               string_to_array(properties, ',') AS keep
    ), feat AS (
        SELECT s.point_id,
               CASE WHEN t.keep IS NULL OR 'road_id' = ANY (t.keep) THEN s.road_id END AS road_id,
               CASE WHEN t.keep IS NULL OR 'n_images' = ANY (t.keep) THEN s.n_images END AS n_images,
               CASE WHEN t.keep IS NULL OR 'building' = ANY (t.keep) THEN s.building END AS building,
               CASE WHEN t.keep IS NULL OR 'road' = ANY (t.keep) THEN s.road END AS road,
               CASE WHEN t.keep IS NULL OR 'sky' = ANY (t.keep) THEN s.sky END AS sky,
               CASE WHEN t.keep IS NULL OR 'greenery' = ANY (t.keep) THEN s.greenery END AS greenery,
               CASE WHEN t.keep IS NULL OR 'sidewalk' = ANY (t.keep) THEN s.sidewalk END AS sidewalk,
               CASE WHEN t.keep IS NULL OR 'car' = ANY (t.keep) THEN s.car END AS car,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.point_tile AS s, t
        WHERE z >= 14 AND s.geom && t.probe
        LIMIT 20000
    )
    SELECT coalesce(ST_AsMVT(feat, 'api.points', 4096, 'geom', 'point_id'), ''::bytea)
    FROM feat
    WHERE geom IS NOT NULL
$$;
COMMENT ON FUNCTION api.points(integer, integer, integer, text) IS
    'Sample points with the mean share of each element over their images; zoom >= 14 only (empty below). properties: comma-separated attributes to keep.';

CREATE OR REPLACE FUNCTION api.areas(z integer, x integer, y integer, properties text DEFAULT NULL)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    WITH t AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_TileEnvelope(z, x, y, margin => 64.0 / 4096) AS probe,
               string_to_array(properties, ',') AS keep
    ), feat AS (
        SELECT s.area_id,
               CASE WHEN t.keep IS NULL OR 'area_name' = ANY (t.keep) THEN s.area_name END AS area_name,
               CASE WHEN t.keep IS NULL OR 'kind' = ANY (t.keep) THEN s.kind END AS kind,
               CASE WHEN t.keep IS NULL OR 'n_points' = ANY (t.keep) THEN s.n_points END AS n_points,
               CASE WHEN t.keep IS NULL OR 'building_mean' = ANY (t.keep) THEN s.building_mean END AS building_mean,
               CASE WHEN t.keep IS NULL OR 'building_std' = ANY (t.keep) THEN s.building_std END AS building_std,
               CASE WHEN t.keep IS NULL OR 'building_median' = ANY (t.keep) THEN s.building_median END AS building_median,
               CASE WHEN t.keep IS NULL OR 'road_mean' = ANY (t.keep) THEN s.road_mean END AS road_mean,
               CASE WHEN t.keep IS NULL OR 'road_std' = ANY (t.keep) THEN s.road_std END AS road_std,
               CASE WHEN t.keep IS NULL OR 'road_median' = ANY (t.keep) THEN s.road_median END AS road_median,
               CASE WHEN t.keep IS NULL OR 'sky_mean' = ANY (t.keep) THEN s.sky_mean END AS sky_mean,
               CASE WHEN t.keep IS NULL OR 'sky_std' = ANY (t.keep) THEN s.sky_std END AS sky_std,
               CASE WHEN t.keep IS NULL OR 'sky_median' = ANY (t.keep) THEN s.sky_median END AS sky_median,
               CASE WHEN t.keep IS NULL OR 'greenery_mean' = ANY (t.keep) THEN s.greenery_mean END AS greenery_mean,
               CASE WHEN t.keep IS NULL OR 'greenery_std' = ANY (t.keep) THEN s.greenery_std END AS greenery_std,
               CASE WHEN t.keep IS NULL OR 'greenery_median' = ANY (t.keep) THEN s.greenery_median END AS greenery_median,
               CASE WHEN t.keep IS NULL OR 'sidewalk_mean' = ANY (t.keep) THEN s.sidewalk_mean END AS sidewalk_mean,
               CASE WHEN t.keep IS NULL OR 'sidewalk_std' = ANY (t.keep) THEN s.sidewalk_std END AS sidewalk_std,
               CASE WHEN t.keep IS NULL OR 'sidewalk_median' = ANY (t.keep) THEN s.sidewalk_median END AS sidewalk_median,
               CASE WHEN t.keep IS NULL OR 'car_mean' = ANY (t.keep) THEN s.car_mean END AS car_mean,
               CASE WHEN t.keep IS NULL OR 'car_std' = ANY (t.keep) THEN s.car_std END AS car_std,
               CASE WHEN t.keep IS NULL OR 'car_median' = ANY (t.keep) THEN s.car_median END AS car_median,
               ST_AsMVTGeom(s.geom, t.env, 4096, 64, true) AS geom
        FROM streetaudit.area_tile AS s, t
        WHERE s.geom && t.probe
        LIMIT 5000
    )
    SELECT coalesce(ST_AsMVT(feat, 'api.areas', 4096, 'geom', 'area_id'), ''::bytea)
    FROM feat
    WHERE geom IS NOT NULL
$$;
COMMENT ON FUNCTION api.areas(integer, integer, integer, text) IS
    'Heritage areas with n_points and the mean, std and median of each element. properties: comma-separated attributes to keep.';

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
    RETURN new_version;
END
$$;
COMMENT ON FUNCTION streetaudit.refresh_stats(bigint) IS
    'Recompute the published statistics and tile tables from one segmentation model; returns the new data version.';

-- Explicit grants (default privileges cover new objects of the migrating role only).
GRANT SELECT ON ALL TABLES IN SCHEMA api TO streetaudit_reader;
GRANT EXECUTE ON FUNCTION api.segments(integer, integer, integer, text) TO streetaudit_reader;
GRANT EXECUTE ON FUNCTION api.points(integer, integer, integer, text) TO streetaudit_reader;
GRANT EXECUTE ON FUNCTION api.areas(integer, integer, integer, text) TO streetaudit_reader;
