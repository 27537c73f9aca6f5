-- Where each tile layer's data lies, for TileJSON and /{layer}.json `bounds` and `center`:
-- clients (MapLibre, QGIS) zoom to the city from these, so they must be the layer's own
-- features, not the world. Not a view (tipg would publish it as an OGC collection) and not
-- bytea (it would be a tile layer): a scalar function the API calls with a layer id.
--
-- The tile tables are web mercator, an axis-aligned projection of longitude and latitude,
-- so the corners of their extent transform to the corners of the extent in degrees. A
-- layer outside streetaudit.tile_source (api.detections reads the sample points) or one
-- without features gets the extent of the roads, which is the city; NULL when there are none.
CREATE OR REPLACE FUNCTION api.layer_bounds(layer text)
RETURNS double precision[]
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    src regclass;
    b box2d;
    e geometry;
BEGIN
    SELECT l.source INTO src FROM streetaudit.tile_source AS l WHERE l.id = layer;
    IF src IS NOT NULL THEN
        EXECUTE format('SELECT ST_Extent(geom) FROM %s', src) INTO b;
    END IF;
    IF b IS NULL THEN
        SELECT ST_Extent(f.geom) INTO b FROM streetaudit.road_features AS f;
    END IF;
    IF b IS NULL THEN
        RETURN NULL;
    END IF;
    e := ST_Transform(ST_SetSRID(b::geometry, 3857), 4326);
    RETURN ARRAY[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)];
END
$$;
COMMENT ON FUNCTION api.layer_bounds(text) IS
    'Extent (west, south, east, north in degrees) of a tile layer''s features, else of the roads; NULL without data. For TileJSON bounds.';
