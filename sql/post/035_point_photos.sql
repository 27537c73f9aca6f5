-- The photo behind every point, for the map's click panel and /points/{id}, /images/{id}.
--
-- Functions, not views: tipg publishes every view of schema api as an OGC collection, and
-- file locations are nobody's collection. They are SECURITY DEFINER with a fixed
-- search_path, so streetaudit_reader gets exactly these answers and still cannot read
-- streetaudit.*. Only 'ok' images are ever answered (excluded ones stay hidden).
-- Whether an image may be shown at all (provider licences) is STREETAUDIT_SERVE_IMAGES,
-- checked by the API: the database answers the provider so the API can decide.

-- A sample point as the map shows it: where it is, its road and heritage areas, the mean
-- shares the statistics use, each ok view (shares from the stats model, whether a mask is
-- stored), and the pooled ratings of its images when a campaign rated them. NULL: no such point.
CREATE OR REPLACE FUNCTION api.point_detail(point bigint)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT jsonb_build_object(
        'point_id', p.id,
        'lon', ST_X(p.geom),
        'lat', ST_Y(p.geom),
        'retired', p.retired_at IS NOT NULL,
        'road', jsonb_build_object('road_id', r.id, 'name', r.name, 'kind', r.kind),
        'areas', coalesce((
            SELECT jsonb_agg(jsonb_build_object('area_id', pa.area_id, 'name', pa.area_name, 'kind', pa.kind)
                             ORDER BY pa.area_id)
            FROM streetaudit.point_area AS pa WHERE pa.point_id = p.id), '[]'::jsonb),
        'n_images', pe.n_images,
        'shares', CASE WHEN pe.point_id IS NOT NULL THEN jsonb_build_object(
            'building', pe.building, 'road', pe.road, 'sky', pe.sky,
            'greenery', pe.greenery, 'sidewalk', pe.sidewalk, 'car', pe.car) END,
        'model', (SELECT m.name FROM streetaudit.stats_state AS st
                  JOIN streetaudit.model AS m ON m.id = st.model_id),
        'views', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'image_id', i.id, 'provider', i.provider, 'pano_id', i.pano_id,
                       'heading', i.heading, 'pitch', i.pitch, 'fov', i.fov,
                       'width', i.width, 'height', i.height, 'captured_at', i.captured_at,
                       'shares', CASE WHEN s.image_id IS NOT NULL THEN jsonb_build_object(
                           'building', s.building, 'road', s.road, 'sky', s.sky,
                           'greenery', s.greenery, 'sidewalk', s.sidewalk, 'car', s.car) END,
                       'mask', EXISTS (SELECT 1 FROM streetaudit.segmentation AS sm
                                       WHERE sm.image_id = i.id AND sm.mask_uri IS NOT NULL
                                         AND sm.error IS NULL))
                   ORDER BY i.heading, i.provider, i.id)
            FROM streetaudit.image AS i
            LEFT JOIN streetaudit.segmentation AS s
              ON s.image_id = i.id AND s.error IS NULL
             AND s.model_id = (SELECT model_id FROM streetaudit.stats_state)
            WHERE i.point_id = p.id AND i.status = 'ok'), '[]'::jsonb),
        'ratings', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'image_id', ir.image_id, 'elo', ir.elo, 'bt', ir.bt, 'bt_se', ir.bt_se,
                       'n_comparisons', ir.n_comparisons, 'wins', ir.wins)
                   ORDER BY ir.image_id)
            FROM api.image_ratings AS ir WHERE ir.point_id = p.id), '[]'::jsonb)
    )
    FROM streetaudit.sample_point AS p
    JOIN streetaudit.road AS r ON r.id = p.road_id
    LEFT JOIN api.point_elements AS pe ON pe.point_id = p.id
    WHERE p.id = point
$$;
COMMENT ON FUNCTION api.point_detail(bigint) IS
    'A sample point for the map: lon/lat, road, heritage areas, mean shares (stats model), its ok views with their shares and whether a mask is stored, pooled ratings of its images. NULL for an unknown point.';

-- Where an ok image's file and its mask are (the stats model's mask first, else the newest
-- model's), with the provider the licence check needs. No row: no such ok image.
CREATE OR REPLACE FUNCTION api.image_file(image bigint)
RETURNS TABLE (provider text, uri text, sha256 text, mask_uri text, mask_model bigint)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT i.provider, i.uri, i.sha256, m.mask_uri, m.model_id
    FROM streetaudit.image AS i
    LEFT JOIN LATERAL (
        SELECT s.mask_uri, s.model_id
        FROM streetaudit.segmentation AS s
        LEFT JOIN streetaudit.stats_state AS st ON st.model_id = s.model_id
        WHERE s.image_id = i.id AND s.mask_uri IS NOT NULL AND s.error IS NULL
        ORDER BY st.model_id IS NOT NULL DESC, s.model_id DESC
        LIMIT 1
    ) AS m ON true
    WHERE i.id = image AND i.status = 'ok' AND i.uri IS NOT NULL
$$;
COMMENT ON FUNCTION api.image_file(bigint) IS
    'Provider, stored file (uri, sha256) and segmentation mask (mask_uri; the stats model first) of an ok image, for /images/{id}. No row for an unknown or not-ok image.';

-- The map's colour ranges, computed before its first paint: the 2nd and 98th percentiles
-- of each element's road mean and std, of the points' values, and of n_points per road,
-- so one extreme road does not wash out the ramp and the legend never jumps.
CREATE OR REPLACE FUNCTION api.map_ranges()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, public
AS $$
    WITH roads AS (
        SELECT e.element, e.statistic, e.value
        FROM api.road_stats AS rs
        CROSS JOIN LATERAL (VALUES
            ('building', 'mean', rs.building_mean), ('building', 'std', rs.building_std),
            ('road', 'mean', rs.road_mean), ('road', 'std', rs.road_std),
            ('sky', 'mean', rs.sky_mean), ('sky', 'std', rs.sky_std),
            ('greenery', 'mean', rs.greenery_mean), ('greenery', 'std', rs.greenery_std),
            ('sidewalk', 'mean', rs.sidewalk_mean), ('sidewalk', 'std', rs.sidewalk_std),
            ('car', 'mean', rs.car_mean), ('car', 'std', rs.car_std),
            ('*', 'n', rs.n_points::double precision)
        ) AS e (element, statistic, value)
        WHERE rs.n_points > 0
        UNION ALL
        SELECT e.element, 'point', e.value
        FROM api.point_elements AS pe
        CROSS JOIN LATERAL (VALUES
            ('building', pe.building), ('road', pe.road), ('sky', pe.sky),
            ('greenery', pe.greenery), ('sidewalk', pe.sidewalk), ('car', pe.car)
        ) AS e (element, value)
    ),
    q AS (
        SELECT element, statistic, count(value) AS n,
               percentile_cont(ARRAY[0.02, 0.98]) WITHIN GROUP (ORDER BY value) AS bounds
        FROM roads WHERE value IS NOT NULL
        GROUP BY element, statistic
    )
    SELECT coalesce(jsonb_object_agg(element || '_' || statistic,
                                     jsonb_build_object('low', bounds[1], 'high', bounds[2], 'n', n)),
                    '{}'::jsonb)
    FROM q
$$;
COMMENT ON FUNCTION api.map_ranges() IS
    'Colour ranges of the map, keyed element_statistic (statistic mean, std or point; *_n for n_points per road): the 2nd and 98th percentiles (low, high) and how many values they come from.';
