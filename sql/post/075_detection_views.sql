-- Detections and Grad-CAM heat maps across the city, published in schema api.
--
-- Plain views, read live: they follow `detect predict` and `explain` at once. An image
-- counts once it has a detection_done row (it was predicted, with or without detections);
-- only 'ok' images of active sample points count. "In a heritage area" has the one
-- definition of api.point_elements: the area's polygon intersects the point; the rest of
-- the city (area_id NULL) is every point in no core area. Every row names its model.

-- Per predicted image: detections at or above the run's threshold, per label, best score.
CREATE OR REPLACE VIEW api.image_detections AS
    SELECT d.model_id,
           d.image_id,
           i.point_id,
           i.heading,
           d.n AS n_detections,
           coalesce(c.label_counts, '{}'::jsonb) AS label_counts,
           c.max_score,
           d.score_threshold,
           d.predicted_at
    FROM streetaudit.detection_done AS d
    JOIN streetaudit.image AS i ON i.id = d.image_id AND i.status = 'ok'
    JOIN streetaudit.sample_point AS p ON p.id = i.point_id AND p.retired_at IS NULL
    LEFT JOIN LATERAL (
        SELECT jsonb_object_agg(l.label, l.n) AS label_counts, max(l.max_score) AS max_score
        FROM (
            SELECT x.label, count(*) AS n, max(x.score) AS max_score
            FROM streetaudit.detection AS x
            WHERE x.image_id = d.image_id AND x.model_id = d.model_id
            GROUP BY x.label
        ) AS l
    ) AS c ON true;
COMMENT ON VIEW api.image_detections IS
    'Per image a detector ran on (detect predict): n_detections at or above score_threshold, label_counts {label: count}, max_score (NULL: none found).';

-- Per sample point (all its predicted headings together).
CREATE OR REPLACE VIEW api.detections AS
    SELECT e.model_id,
           e.point_id,
           count(*)::integer AS n_images,
           sum(e.n_detections)::integer AS n_detections,
           coalesce((
               SELECT jsonb_object_agg(k.key, k.n)
               FROM (
                   SELECT j.key, sum(j.value::integer)::integer AS n
                   FROM api.image_detections AS e2, jsonb_each_text(e2.label_counts) AS j
                   WHERE e2.model_id = e.model_id AND e2.point_id = e.point_id
                   GROUP BY j.key
               ) AS k
           ), '{}'::jsonb) AS label_counts,
           max(e.max_score) AS max_score,
           coalesce(area.ids, '{}') AS area_ids,
           coalesce(area.core, false) AS in_core,
           p.geom
    FROM api.image_detections AS e
    JOIN streetaudit.sample_point AS p ON p.id = e.point_id
    CROSS JOIN LATERAL (
        SELECT array_agg(a.id ORDER BY a.id) AS ids, bool_or(a.kind = 'core') AS core
        FROM streetaudit.heritage_area AS a
        WHERE ST_Intersects(a.geom, p.geom)
    ) AS area
    GROUP BY e.model_id, e.point_id, p.geom, area.ids, area.core;
COMMENT ON VIEW api.detections IS
    'Per model and sample point: n_images predicted, n_detections, label_counts {label: count}, max_score; area_ids / in_core as in api.point_elements.';

-- Images grouped like api.area_stats: each heritage area, and the rest of the city.
CREATE OR REPLACE VIEW api.detection_stats AS
    WITH img AS (
        SELECT e.model_id, e.image_id, d.area_ids, d.in_core
        FROM api.image_detections AS e
        JOIN api.detections AS d ON d.model_id = e.model_id AND d.point_id = e.point_id
    ),
    grouped AS (
        SELECT a.id AS area_id, a.name AS area_name, a.kind, img.model_id, img.image_id
        FROM streetaudit.heritage_area AS a
        JOIN img ON a.id = ANY (img.area_ids)
        UNION ALL
        SELECT NULL, 'rest of the city', 'rest', img.model_id, img.image_id
        FROM img
        WHERE NOT img.in_core
    ),
    per_label AS (
        SELECT x.model_id, x.image_id, x.label, count(*) AS n, sum(x.score) AS score_sum
        FROM streetaudit.detection AS x
        GROUP BY x.model_id, x.image_id, x.label
    ),
    rows AS (
        SELECT g.area_id, g.area_name, g.kind, g.model_id, l.label, g.image_id,
               coalesce(pl.n, 0) AS n, coalesce(pl.score_sum, 0) AS score_sum
        FROM grouped AS g
        JOIN streetaudit.model AS m ON m.id = g.model_id
        CROSS JOIN LATERAL unnest(m.labels) AS l (label)
        LEFT JOIN per_label AS pl ON pl.model_id = g.model_id AND pl.image_id = g.image_id AND pl.label = l.label
    )
    SELECT r.model_id, r.area_id, r.area_name, r.kind, r.label,
           count(*)::integer AS n_images,
           (count(*) FILTER (WHERE r.n > 0))::integer AS images_with,
           (count(*) FILTER (WHERE r.n > 0))::double precision / count(*) AS share_with,
           sum(r.n)::double precision / count(*) AS detections_per_image,
           sum(r.score_sum) / nullif(sum(r.n), 0) AS mean_score
    FROM rows AS r
    GROUP BY r.model_id, r.area_id, r.area_name, r.kind, r.label;
COMMENT ON VIEW api.detection_stats IS
    'Per model, heritage area (area_id NULL: the rest of the city, points in no core area) and label: n_images predicted, images_with >= 1 detection of the label, share_with, detections_per_image, mean_score of those detections.';

-- Heat-map statistics per area and the rest of the city (means over images; NULLs, e.g.
-- no mask, left out of each mean and counted apart).
CREATE OR REPLACE VIEW api.heat_stats AS
    WITH img AS (
        SELECT h.model_id, h.method, h.target, h.image_id, h.status, h.inside_boxes, h.on_building,
               h.facade_height, h.upper_third, coalesce(area.ids, '{}') AS area_ids,
               coalesce(area.core, false) AS in_core
        FROM streetaudit.heatmap AS h
        JOIN streetaudit.image AS i ON i.id = h.image_id AND i.status = 'ok'
        JOIN streetaudit.sample_point AS p ON p.id = i.point_id AND p.retired_at IS NULL
        CROSS JOIN LATERAL (
            SELECT array_agg(a.id ORDER BY a.id) AS ids, bool_or(a.kind = 'core') AS core
            FROM streetaudit.heritage_area AS a
            WHERE ST_Intersects(a.geom, p.geom)
        ) AS area
    ),
    grouped AS (
        SELECT a.id AS area_id, a.name AS area_name, a.kind, img.*
        FROM streetaudit.heritage_area AS a
        JOIN img ON a.id = ANY (img.area_ids)
        UNION ALL
        SELECT NULL, 'rest of the city', 'rest', img.*
        FROM img
        WHERE NOT img.in_core
    )
    SELECT g.model_id, g.method, g.target, g.area_id, g.area_name, g.kind,
           count(*)::integer AS n_images,
           count(g.on_building)::integer AS n_with_mask,
           (count(*) FILTER (WHERE g.status = 'empty'))::integer AS n_empty,
           avg(g.inside_boxes) AS inside_boxes_mean,
           avg(g.on_building) AS on_building_mean,
           avg(g.facade_height) AS facade_height_mean,
           avg(g.upper_third) AS upper_third_mean
    FROM grouped AS g
    GROUP BY g.model_id, g.method, g.target, g.area_id, g.area_name, g.kind;
COMMENT ON VIEW api.heat_stats IS
    'Per model, CAM method, target and heritage area (area_id NULL: the rest of the city): n_images with a heat map, n_with_mask, n_empty (maps of nothing: status empty, shares NULL), and the means of inside_boxes, on_building, facade_height (0 base, 1 top) and upper_third. Core-vs-rest tests: api.heat_comparison.';

-- The detector the map shows when a tile names none: of the detectors that predicted, the
-- one whose training run (`detect train`) finished last; when none of them was trained
-- here (a detector loaded from a file), the one that predicted last. A finished run is a
-- stable choice: resuming `detect predict` with an older detector does not switch the map.
CREATE OR REPLACE VIEW streetaudit.tile_detector AS
    SELECT coalesce(
        (SELECT r.model_id FROM streetaudit.detector_run AS r
         WHERE r.status = 'finished' AND r.model_id IS NOT NULL
           AND EXISTS (SELECT FROM streetaudit.detection_done AS d WHERE d.model_id = r.model_id)
         ORDER BY r.finished_at DESC NULLS LAST, r.id DESC LIMIT 1),
        (SELECT d.model_id FROM streetaudit.detection_done AS d
         ORDER BY d.predicted_at DESC, d.model_id DESC LIMIT 1)) AS model_id;
COMMENT ON VIEW streetaudit.tile_detector IS
    'The detector api.detections tiles show by default: the latest finished training run''s model that has predictions, else the model that predicted last.';

-- The layer's tile table (streetaudit.tile_source): a plain view, read live, so the map
-- follows `detect predict` at once (which bumps the data version tiles are cached by).
-- label_counts is jsonb: ST_AsMVT makes each key (n_<label>) an attribute.
CREATE OR REPLACE VIEW streetaudit.detection_features AS
    SELECT pd.point_id, pd.model_id, pd.n_images, pd.n_detections, pd.max_score,
           (SELECT coalesce(jsonb_object_agg('n_' || j.key, j.value), '{}'::jsonb)
            FROM jsonb_each(pd.label_counts) AS j) AS label_counts,
           ST_Transform(pd.geom, 3857)::geometry(Point, 3857) AS geom
    FROM api.detections AS pd
    WHERE pd.model_id = (SELECT t.model_id FROM streetaudit.tile_detector AS t);

-- Tile layer: sample points with their detection counts (label_counts keys become
-- attributes n_<label>). Without `model`, or naming the default detector, the layer of
-- streetaudit.tile_source (byte budget, attributes from the catalog); another detector's
-- points are encoded here, the same attributes.
CREATE OR REPLACE FUNCTION api.detections(z integer, x integer, y integer, model bigint DEFAULT NULL)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT CASE
        WHEN model IS NULL OR model IS NOT DISTINCT FROM (SELECT t.model_id FROM streetaudit.tile_detector AS t)
        THEN streetaudit.layer_tile('api.detections', z, x, y, NULL, NULL)
        ELSE (
            SELECT coalesce(ST_AsMVT(f, 'api.detections', 4096, 'geom', 'point_id'), ''::bytea)
            FROM (
                SELECT pd.point_id, pd.model_id, pd.n_images, pd.n_detections, pd.max_score,
                       (SELECT coalesce(jsonb_object_agg('n_' || j.key, j.value), '{}'::jsonb)
                        FROM jsonb_each(pd.label_counts) AS j) AS label_counts,
                       ST_AsMVTGeom(ST_Transform(pd.geom, 3857), ST_TileEnvelope(z, x, y), 4096, 64, true) AS geom
                FROM api.detections AS pd
                WHERE pd.model_id = model
                  AND pd.geom && ST_Transform(ST_TileEnvelope(z, x, y, margin => 64.0 / 4096), 4326)
                ORDER BY pd.n_detections DESC
                LIMIT 20000
            ) AS f
            WHERE f.geom IS NOT NULL)
    END
$$;
COMMENT ON FUNCTION api.detections(integer, integer, integer, bigint) IS
    'Sample points with model_id, n_images predicted, n_detections, max_score and n_<label> per label, of one detector (model: its id; default the latest finished training run''s detector that predicted, else the one that predicted last). Points with most detections first when over budget; at most 20000 per tile.';
