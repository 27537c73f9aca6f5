-- Statistics: per-point element values, per-segment and per-area statistics, and the
-- core-vs-rest comparison, published in schema api for analysts, tiles and the API.
--
-- Everything is computed from ONE segmentation model, recorded in streetaudit.stats_state
-- by `streetaudit stats refresh` (the most recent model unless --model says otherwise).
-- The heavy views are materialized: reading them costs nothing, and they change only when
-- the stats are refreshed, which bumps the data version that HTTP caches key on.

CREATE TABLE IF NOT EXISTS streetaudit.stats_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    model_id bigint REFERENCES streetaudit.model (id) ON DELETE SET NULL,
    version bigint NOT NULL DEFAULT 0,
    refreshed_at timestamptz
);
INSERT INTO streetaudit.stats_state (singleton) VALUES (true) ON CONFLICT DO NOTHING;
COMMENT ON TABLE streetaudit.stats_state IS
    'The model the published statistics come from, and the data version (bumped by every stats refresh).';
COMMENT ON COLUMN streetaudit.stats_state.version IS
    'Milliseconds since the epoch at the last refresh, never decreasing: unique even across a recreated database, so cached tiles cannot be confused.';

-- A point's value for an element is the mean over its ok images (all headings) that the
-- stats model segmented without error.
CREATE MATERIALIZED VIEW IF NOT EXISTS api.point_elements AS
    SELECT p.id AS point_id,
           p.road_id,
           count(*)::integer AS n_images,
           avg(s.building) AS building,
           avg(s.road) AS road,
           avg(s.sky) AS sky,
           avg(s.greenery) AS greenery,
           avg(s.sidewalk) AS sidewalk,
           avg(s.car) AS car,
           p.geom
    FROM streetaudit.sample_point AS p
    JOIN streetaudit.image AS i ON i.point_id = p.id AND i.status = 'ok'
    JOIN streetaudit.segmentation AS s ON s.image_id = i.id AND s.error IS NULL
    JOIN streetaudit.stats_state AS st ON s.model_id = st.model_id
    GROUP BY p.id;
CREATE UNIQUE INDEX IF NOT EXISTS point_elements_point_idx ON api.point_elements (point_id);
CREATE INDEX IF NOT EXISTS point_elements_road_idx ON api.point_elements (road_id);
CREATE INDEX IF NOT EXISTS point_elements_geom_idx ON api.point_elements USING gist (geom);
COMMENT ON MATERIALIZED VIEW api.point_elements IS
    'Per sample point with at least one ok, segmented image: the mean share of each element over its images (stats model only).';

-- Per road: how many points carry data, and the mean and sample standard deviation (n-1)
-- of each element over those points. Roads without data are kept (n_points 0, NULLs) so
-- the map can show where imagery is missing.
CREATE MATERIALIZED VIEW IF NOT EXISTS api.segment_stats AS
    SELECT r.id AS road_id,
           r.name,
           r.kind,
           r.length_m,
           count(pe.point_id)::integer AS n_points,
           avg(pe.building) AS building_mean,
           stddev_samp(pe.building) AS building_std,
           avg(pe.road) AS road_mean,
           stddev_samp(pe.road) AS road_std,
           avg(pe.sky) AS sky_mean,
           stddev_samp(pe.sky) AS sky_std,
           avg(pe.greenery) AS greenery_mean,
           stddev_samp(pe.greenery) AS greenery_std,
           avg(pe.sidewalk) AS sidewalk_mean,
           stddev_samp(pe.sidewalk) AS sidewalk_std,
           avg(pe.car) AS car_mean,
           stddev_samp(pe.car) AS car_std,
           r.geom
    FROM streetaudit.road AS r
    LEFT JOIN api.point_elements AS pe ON pe.road_id = r.id
    GROUP BY r.id;
CREATE UNIQUE INDEX IF NOT EXISTS segment_stats_road_idx ON api.segment_stats (road_id);
CREATE INDEX IF NOT EXISTS segment_stats_geom_idx ON api.segment_stats USING gist (geom);
COMMENT ON MATERIALIZED VIEW api.segment_stats IS
    'Per road: n_points (points with >= 1 ok segmented image), mean and sample std (n-1) of each element over its points.';

-- Per heritage area (points intersecting it) and one row for the rest of the city
-- (area_id NULL: points in no core area). Quartiles interpolate linearly, like numpy.
CREATE MATERIALIZED VIEW IF NOT EXISTS api.area_stats AS
    WITH membership AS (
        SELECT a.id AS area_id, a.name AS area_name, a.kind, pe.point_id, pe.building, pe.road, pe.sky, pe.greenery, pe.sidewalk, pe.car
        FROM streetaudit.heritage_area AS a
        LEFT JOIN api.point_elements AS pe ON ST_Intersects(a.geom, pe.geom)
        UNION ALL
        SELECT NULL, 'rest of the city', 'rest', pe.point_id, pe.building, pe.road, pe.sky, pe.greenery, pe.sidewalk, pe.car
        FROM (VALUES (1)) AS one (x)
        LEFT JOIN api.point_elements AS pe ON NOT EXISTS (
            SELECT 1 FROM streetaudit.heritage_area AS c
            WHERE c.kind = 'core' AND ST_Intersects(c.geom, pe.geom)
        )
    )
    SELECT m.area_id,
           m.area_name,
           m.kind,
           count(m.point_id)::integer AS n_points,
           avg(m.building) AS building_mean,
           stddev_samp(m.building) AS building_std,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY m.building) AS building_p25,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.building) AS building_median,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY m.building) AS building_p75,
           min(m.building) AS building_min,
           max(m.building) AS building_max,
           avg(m.road) AS road_mean,
           stddev_samp(m.road) AS road_std,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY m.road) AS road_p25,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.road) AS road_median,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY m.road) AS road_p75,
           min(m.road) AS road_min,
           max(m.road) AS road_max,
           avg(m.sky) AS sky_mean,
           stddev_samp(m.sky) AS sky_std,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY m.sky) AS sky_p25,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.sky) AS sky_median,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY m.sky) AS sky_p75,
           min(m.sky) AS sky_min,
           max(m.sky) AS sky_max,
           avg(m.greenery) AS greenery_mean,
           stddev_samp(m.greenery) AS greenery_std,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY m.greenery) AS greenery_p25,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.greenery) AS greenery_median,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY m.greenery) AS greenery_p75,
           min(m.greenery) AS greenery_min,
           max(m.greenery) AS greenery_max,
           avg(m.sidewalk) AS sidewalk_mean,
           stddev_samp(m.sidewalk) AS sidewalk_std,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY m.sidewalk) AS sidewalk_p25,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.sidewalk) AS sidewalk_median,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY m.sidewalk) AS sidewalk_p75,
           min(m.sidewalk) AS sidewalk_min,
           max(m.sidewalk) AS sidewalk_max,
           avg(m.car) AS car_mean,
           stddev_samp(m.car) AS car_std,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY m.car) AS car_p25,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.car) AS car_median,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY m.car) AS car_p75,
           min(m.car) AS car_min,
           max(m.car) AS car_max,
           a.geom
    FROM membership AS m
    LEFT JOIN streetaudit.heritage_area AS a ON a.id = m.area_id
    GROUP BY m.area_id, m.area_name, m.kind, a.geom;
COMMENT ON MATERIALIZED VIEW api.area_stats IS
    'Per heritage area, plus the rest of the city (area_id NULL): n_points and mean, std (n-1), p25, median, p75, min, max of each element.';

-- The core-vs-rest tests need scipy, so the stats flow computes them and stores them here.
CREATE TABLE IF NOT EXISTS streetaudit.area_comparison_result (
    area_id bigint,
    area_name text NOT NULL,
    element text NOT NULL CHECK (element IN ('building', 'road', 'sky', 'greenery', 'sidewalk', 'car')),
    n_core integer NOT NULL,
    n_rest integer NOT NULL,
    mean_core double precision,
    mean_rest double precision,
    mean_diff double precision,
    cohens_d double precision,
    welch_t double precision,
    welch_df double precision,
    welch_p double precision,
    welch_p_holm double precision,
    mannwhitney_u double precision,
    mannwhitney_p double precision,
    mannwhitney_p_holm double precision,
    model_id bigint REFERENCES streetaudit.model (id) ON DELETE CASCADE,
    computed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE streetaudit.area_comparison_result IS
    'Written by the stats flow (scipy): each core area (area_id NULL = all cores together) against the rest of the city, per element.';

CREATE OR REPLACE VIEW api.area_comparison AS
    SELECT area_id, area_name, element, n_core, n_rest, mean_core, mean_rest, mean_diff, cohens_d,
           welch_t, welch_df, welch_p, welch_p_holm, mannwhitney_u, mannwhitney_p, mannwhitney_p_holm,
           model_id, computed_at
    FROM streetaudit.area_comparison_result
    ORDER BY area_id NULLS FIRST,
             array_position(ARRAY['building', 'road', 'sky', 'greenery', 'sidewalk', 'car'], element);
COMMENT ON VIEW api.area_comparison IS
    'Core area (NULL: all cores together) vs rest of the city per element: mean_diff = core - rest, Cohen''s d (pooled sd), Welch t/df/p, Mann-Whitney U (two-sided) and p; *_holm = Holm-adjusted across the six elements of that comparison.';

CREATE OR REPLACE VIEW api.data_version AS
    SELECT st.version, st.refreshed_at, st.model_id, m.name AS model_name
    FROM streetaudit.stats_state AS st
    LEFT JOIN streetaudit.model AS m ON m.id = st.model_id;
COMMENT ON VIEW api.data_version IS
    'Version of the published statistics and tiles (changes on every stats refresh) and the model they come from.';
