-- Ratings published to readers: per image (pooled), the latest campaign status, and a
-- tile layer of rated images for QGIS and MapLibre. All read what `ratings recompute`
-- wrote, which also bumps the data version the tile caches key on.

-- One row per rated image: its sample point, the heritage area it lies in, the pooled
-- ELO and Bradley–Terry scores (with standard error), comparisons and wins, and the live
-- online ELO (which moves with every choice, between recomputations).
CREATE OR REPLACE VIEW api.image_ratings AS
    SELECT i.id AS image_id,
           i.point_id,
           area.name AS area_name,
           elo.score AS elo,
           bt.score AS bt,
           bt.se AS bt_se,
           bt.n AS n_comparisons,
           bt.wins,
           ri.elo AS elo_online,
           bt.computed_at,
           p.geom
    FROM streetaudit.rating AS bt
    JOIN streetaudit.rating AS elo
      ON elo.image_id = bt.image_id AND elo.method = 'elo' AND elo.rater_id IS NULL
    JOIN streetaudit.image AS i ON i.id = bt.image_id
    JOIN streetaudit.sample_point AS p ON p.id = i.point_id
    LEFT JOIN streetaudit.rating_image AS ri ON ri.image_id = i.id
    LEFT JOIN LATERAL (
        SELECT a.name FROM streetaudit.heritage_area AS a
        WHERE ST_Intersects(a.geom, p.geom) ORDER BY a.kind <> 'core', a.id LIMIT 1
    ) AS area ON true
    WHERE bt.method = 'bt' AND bt.rater_id IS NULL;
COMMENT ON VIEW api.image_ratings IS
    'Pooled ratings per image (from `streetaudit ratings recompute`): elo (initial 1500), bt (Bradley-Terry, logits) with bt_se, n_comparisons, wins; elo_online is the live ELO; geom is the sample point.';

CREATE OR REPLACE VIEW api.rating_status AS
    SELECT computed_at, status FROM streetaudit.rating_status ORDER BY id DESC LIMIT 1;
COMMENT ON VIEW api.rating_status IS
    'The latest `streetaudit ratings status`: comparisons, per-rater counts, split-half reliability, stability by the stated rule, agreement.';

-- Rated images as points with their pooled scores, at every zoom (a campaign has
-- thousands of images, not millions); at most `cap` features per tile, best rated first.
CREATE OR REPLACE FUNCTION api.ratings(z integer, x integer, y integer, cap integer DEFAULT 20000)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    WITH t AS (
        SELECT ST_TileEnvelope(z, x, y) AS env, ST_TileEnvelope(z, x, y, margin => 64.0 / 4096) AS probe
    ), feat AS (
        SELECT r.image_id, r.area_name, r.elo, r.bt, r.bt_se, r.n_comparisons,
               ST_AsMVTGeom(ST_Transform(r.geom, 3857), t.env, 4096, 64, true) AS geom
        FROM api.image_ratings AS r, t
        WHERE ST_Transform(r.geom, 3857) && t.probe
        ORDER BY r.elo DESC
        LIMIT least(greatest(coalesce(cap, 20000), 1), 20000)
    )
    SELECT coalesce(ST_AsMVT(feat, 'api.ratings', 4096, 'geom', 'image_id'), ''::bytea) FROM feat
    WHERE geom IS NOT NULL
$$;
COMMENT ON FUNCTION api.ratings(integer, integer, integer, integer) IS
    'Rated images (points) with pooled elo, bt, bt_se and n_comparisons, for colouring by score; best rated first, at most cap per tile.';

INSERT INTO streetaudit.tile_layer VALUES
    ('api.ratings', ARRAY['area_name', 'elo', 'bt', 'bt_se', 'n_comparisons'],
     ARRAY['String', 'Number', 'Number', 'Number', 'Number'], 0, 22, 'point')
ON CONFLICT (id) DO UPDATE
    SET properties = EXCLUDED.properties, property_types = EXCLUDED.property_types, minzoom = EXCLUDED.minzoom,
        maxzoom = EXCLUDED.maxzoom, geometry_type = EXCLUDED.geometry_type;

GRANT SELECT ON api.image_ratings, api.rating_status TO streetaudit_reader;
GRANT EXECUTE ON FUNCTION api.ratings(integer, integer, integer, integer) TO streetaudit_reader;
