-- Statistics: per-point element values, per-segment and per-area statistics, and the
-- core-vs-rest comparison, published in schema api for analysts, tiles and the API.
--
-- Everything is computed from ONE selection, recorded in streetaudit.stats_state by
-- `streetaudit stats refresh`: a segmentation model (the most recent unless --model says
-- otherwise) and a provider (the one with the most ok images unless --provider says).
-- The published statistics are derived tables, each filled from its definition view
-- (streetaudit.<table>_computed) by streetaudit.replace_rows: reading them costs nothing,
-- and they change only when the stats are refreshed, which bumps the data version that
-- HTTP caches key on. A full refresh replaces every row; an incremental one (only points'
-- images or segmentations changed, streetaudit.stats_dirty_point) replaces the rows of the
-- changed points, their roads and streets, by the same statement restricted to their keys.
-- Every mean over points or images is taken in id order (ORDER BY in the aggregate), so a
-- float sum does not depend on the plan and the incremental result equals the full one
-- exactly. When this file changes, `db migrate` recreates the tables from the recorded
-- model (a refresh without the scipy tests, whose table is kept).

COMMENT ON TABLE streetaudit.stats_state IS
    'The selection the published statistics come from (model, provider, complete_only; holm_family and permutations of the comparison), and the data version (bumped by every stats refresh that recomputes; inputs_tracked_at: when the last one cleared streetaudit.stats_input_change).';
COMMENT ON TABLE streetaudit.stats_input_change IS
    'One row per transaction and table written among those the published statistics read (trigger stats_input_change); cleared by the stats refresh, so a row here means the next refresh has work to do.';
COMMENT ON COLUMN streetaudit.stats_state.version IS
    'Milliseconds since the epoch at the last refresh, never decreasing: unique even across a recreated database, so cached tiles cannot be confused.';
COMMENT ON TABLE streetaudit.area_comparison_result IS
    'Written by the stats flow (scipy): each core area (area_id NULL = all cores together) against the rest of the city, per element.';

-- The selection the statistics come from (streetaudit.stats_state): one segmentation model
-- and one provider, so views of different providers at a point are never averaged together.
-- Per active point with a view of that provider: n_views recorded (any status) and n_images
-- usable (ok, segmented without error by the model), with the mean share of each element
-- over the usable ones (in image id order). complete: every recorded view is usable.
CREATE VIEW streetaudit.point_views AS
    SELECT p.id AS point_id,
           p.road_id,
           count(*)::integer AS n_views,
           count(s.image_id)::integer AS n_images,
           count(s.image_id) = count(*) AS complete,
           avg(s.building ORDER BY i.id) AS building,
           avg(s.road ORDER BY i.id) AS road,
           avg(s.sky ORDER BY i.id) AS sky,
           avg(s.greenery ORDER BY i.id) AS greenery,
           avg(s.sidewalk ORDER BY i.id) AS sidewalk,
           avg(s.car ORDER BY i.id) AS car,
           p.geom
    FROM streetaudit.sample_point AS p
    JOIN streetaudit.stats_state AS st ON true
    JOIN streetaudit.image AS i ON i.point_id = p.id AND i.provider = st.provider
    LEFT JOIN streetaudit.segmentation AS s
      ON s.image_id = i.id AND i.status = 'ok' AND s.error IS NULL AND s.model_id = st.model_id
    WHERE p.retired_at IS NULL  -- retired points keep their images but leave the statistics
    GROUP BY p.id;
COMMENT ON VIEW streetaudit.point_views IS
    'Per active point, views of the stats provider: n_views recorded (any status), n_images usable (ok, segmented by the stats model without error), complete = all usable, and the mean shares over the usable ones.';

-- A point's value for an element is the mean over its usable views (all headings) of the
-- selection; with stats_state.complete_only, only points whose every view is usable count
-- (a point averaging 2 of 4 headings sees a different street than one averaging 4).
-- area_ids lists the heritage areas the point lies in (streetaudit.point_area, the one
-- definition), in_core says whether one of them is of kind core (otherwise the point is in
-- the rest of the city).
CREATE VIEW streetaudit.point_elements_computed AS
    SELECT pv.point_id, pv.road_id, pv.n_images,
           pv.building, pv.road, pv.sky, pv.greenery, pv.sidewalk, pv.car,
           coalesce(area.ids, '{}') AS area_ids,
           coalesce(area.core, false) AS in_core,
           pv.geom,
           pv.n_views
    FROM streetaudit.point_views AS pv
    JOIN streetaudit.stats_state AS st ON pv.n_images > 0 AND (pv.complete OR NOT st.complete_only)
    CROSS JOIN LATERAL (
        SELECT array_agg(pa.area_id ORDER BY pa.area_id) AS ids, bool_or(pa.kind = 'core') AS core
        FROM streetaudit.point_area AS pa
        WHERE pa.point_id = pv.point_id
    ) AS area;
COMMENT ON VIEW streetaudit.point_elements_computed IS 'api.point_elements as its inputs give it now.';

-- Replace the rows of a derived table by what its definition view gives now: all of them
-- (keys NULL: the full refresh) or those whose `key` is one of `keys` (the incremental
-- one). Both run this one statement, the incremental one with the predicate on the key,
-- which the planner pushes into the view's grouping (an index probe per key, not a scan
-- of the city). Rows go in key order. Identifiers come from the catalog (regclass) and
-- from the callers' own SQL, never from a user.
CREATE OR REPLACE FUNCTION streetaudit.replace_rows(target regclass, source regclass, key text, keys bigint[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET work_mem = '256MB'  -- the definitions' sorts (a city's points, overview cells) in memory
AS $$
DECLARE
    n bigint;
BEGIN
    IF keys IS NULL THEN
        EXECUTE format('DELETE FROM %s', target);
        EXECUTE format('INSERT INTO %s SELECT * FROM %s ORDER BY %I', target, source, key);
    ELSE
        EXECUTE format('DELETE FROM %s WHERE %I = ANY ($1)', target, key) USING keys;
        EXECUTE format('INSERT INTO %s SELECT * FROM %s WHERE %I = ANY ($1) ORDER BY %I', target, source, key, key)
        USING keys;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION streetaudit.replace_rows(regclass, regclass, text, bigint[]) IS
    'Replace the rows of a derived table (all, or those whose key is in keys) by those its definition view gives now; returns how many were written.';

-- The published tables: made with their data from the recorded selection, then kept by
-- the stats refresh (streetaudit.refresh_stats).
CREATE TABLE api.point_elements AS SELECT * FROM streetaudit.point_elements_computed ORDER BY point_id;
ALTER TABLE api.point_elements ADD PRIMARY KEY (point_id);
CREATE INDEX IF NOT EXISTS point_elements_road_idx ON api.point_elements (road_id);
CREATE INDEX IF NOT EXISTS point_elements_geom_idx ON api.point_elements USING gist (geom);
COMMENT ON TABLE api.point_elements IS
    'Per active sample point (retired_at NULL) with at least one usable view of the stats selection (api.data_version: provider, model, complete_only): n_images usable views of n_views recorded, the mean share of each element over them; area_ids: the heritage areas it lies in; in_core: whether one is a core area.';

-- Per road: how many points carry data, and the mean and sample standard deviation (n-1)
-- of each element over those points (in point id order). Roads without data are kept
-- (n_points 0, NULLs) so the map can show where imagery is missing.
CREATE VIEW streetaudit.road_stats_computed AS
    SELECT r.id AS road_id,
           r.name,
           r.kind,
           r.length_m,
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
           r.geom,
           coalesce(sum(pe.n_images), 0)::integer AS n_images  -- last: existing clients keep their column order
    FROM streetaudit.road AS r
    LEFT JOIN api.point_elements AS pe ON pe.road_id = r.id
    GROUP BY r.id;
COMMENT ON VIEW streetaudit.road_stats_computed IS 'api.road_stats as api.point_elements gives it now.';
CREATE TABLE api.road_stats AS SELECT * FROM streetaudit.road_stats_computed ORDER BY road_id;
ALTER TABLE api.road_stats ADD PRIMARY KEY (road_id);
CREATE INDEX IF NOT EXISTS road_stats_geom_idx ON api.road_stats USING gist (geom);
COMMENT ON TABLE api.road_stats IS
    'Per road: n_points (points with >= 1 usable view of the stats selection), n_images (the usable views behind them), mean and sample std (n-1) of each element over its points.';

-- Per heritage area (its points, by point_elements.area_ids) and one row for the rest of
-- the city (area_id NULL: points in no core area). Quartiles interpolate linearly, like numpy.
-- Every point counts in some area: each refresh recomputes it whole (a fraction of a second
-- at a city's scale).
CREATE VIEW streetaudit.area_stats_computed AS
    WITH membership AS (
        SELECT a.id AS area_id, a.name AS area_name, a.kind, pe.point_id, pe.n_images, pe.building, pe.road, pe.sky, pe.greenery, pe.sidewalk, pe.car
        FROM streetaudit.heritage_area AS a
        LEFT JOIN api.point_elements AS pe ON a.id = ANY (pe.area_ids)
        UNION ALL
        SELECT NULL, 'rest of the city', 'rest', pe.point_id, pe.n_images, pe.building, pe.road, pe.sky, pe.greenery, pe.sidewalk, pe.car
        FROM (VALUES (1)) AS one (x)
        LEFT JOIN api.point_elements AS pe ON NOT pe.in_core
    ),
    -- The points of each area in point id order, so a float mean does not depend on the plan
    -- (a refresh that rewrote some points' rows leaves them elsewhere in the table).
    ordered AS (
        SELECT * FROM membership ORDER BY area_id, area_name, kind, point_id
    ), stats AS (
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
           coalesce(sum(m.n_images), 0)::integer AS n_images
    FROM ordered AS m
    GROUP BY m.area_id, m.area_name, m.kind
    )
    SELECT s.area_id, s.area_name, s.kind, s.n_points,
           s.building_mean, s.building_std, s.building_p25, s.building_median, s.building_p75, s.building_min, s.building_max,
           s.road_mean, s.road_std, s.road_p25, s.road_median, s.road_p75, s.road_min, s.road_max,
           s.sky_mean, s.sky_std, s.sky_p25, s.sky_median, s.sky_p75, s.sky_min, s.sky_max,
           s.greenery_mean, s.greenery_std, s.greenery_p25, s.greenery_median, s.greenery_p75, s.greenery_min, s.greenery_max,
           s.sidewalk_mean, s.sidewalk_std, s.sidewalk_p25, s.sidewalk_median, s.sidewalk_p75, s.sidewalk_min, s.sidewalk_max,
           s.car_mean, s.car_std, s.car_p25, s.car_median, s.car_p75, s.car_min, s.car_max,
           a.geom,
           s.n_images
    FROM stats AS s
    LEFT JOIN streetaudit.heritage_area AS a ON a.id = s.area_id;
COMMENT ON VIEW streetaudit.area_stats_computed IS 'api.area_stats as api.point_elements gives it now.';
CREATE TABLE api.area_stats AS SELECT * FROM streetaudit.area_stats_computed ORDER BY area_id;
-- Unique, the rest of the city's NULL included.
CREATE UNIQUE INDEX IF NOT EXISTS area_stats_area_idx ON api.area_stats (area_id) NULLS NOT DISTINCT;
COMMENT ON TABLE api.area_stats IS
    'Per heritage area, plus the rest of the city (area_id NULL): n_points, n_images (usable views behind them) and mean, std (n-1), p25, median, p75, min, max of each element.';

CREATE OR REPLACE VIEW api.area_comparison AS
    SELECT area_id, area_name, element, n_core, n_rest, mean_core, mean_rest, mean_diff, cohens_d,
           welch_t, welch_df, welch_p, welch_p_holm, mannwhitney_u, mannwhitney_p, mannwhitney_p_holm,
           model_id, computed_at,
           n_images_core, n_images_rest, cluster_unit, n_clusters_core, n_clusters_rest,
           n_permutations, permutation_p, permutation_p_holm,
           cluster_diff, cluster_se, cluster_ci_low, cluster_ci_high, cluster_p, cluster_p_holm,
           holm_family, provider, complete_only
    FROM streetaudit.area_comparison_result
    ORDER BY area_id NULLS FIRST,
             array_position(ARRAY['building', 'road', 'sky', 'greenery', 'sidewalk', 'car'], element);
COMMENT ON VIEW api.area_comparison IS
    'Core area (NULL: all cores together) vs rest of the city per element. Point level: mean_diff = core - rest, Cohen''s d (pooled sd; NULL when both groups are single points or the sd is 0), Welch t/df/p, Mann-Whitney U (two-sided) and p. Street level (report these: points on one street are not independent): permutation_p reassigns whole streets (cluster_unit; split at the core boundary) between core and rest, n_permutations times; cluster_diff/se/ci_low/ci_high/p = OLS with standard errors clustered by street (CR1, t with G-1 df); both NULL with fewer than 2 clusters on a side. *_holm = Holm-adjusted over holm_family: the six elements of that comparison (elements) or every area x element (all). provider, model_id, complete_only: the selection the values come from.';

CREATE OR REPLACE VIEW api.data_version AS
    SELECT st.version, st.refreshed_at, st.model_id, m.name AS model_name, st.provider, st.complete_only
    FROM streetaudit.stats_state AS st
    LEFT JOIN streetaudit.model AS m ON m.id = st.model_id;
COMMENT ON VIEW api.data_version IS
    'Version of the published statistics and tiles (changes on every stats refresh that recomputes; one with nothing changed keeps it) and the selection they come from: model, provider (views of one provider only) and complete_only (only points whose every view is usable).';

-- This file just ran again (`db migrate`): the views above were made anew, perhaps with new
-- definitions, but the comparison was kept. The next `stats refresh` recomputes it
-- instead of finding nothing changed.
INSERT INTO streetaudit.stats_input_change (relation, operation) VALUES ('definitions', 'db migrate')
ON CONFLICT DO NOTHING;
