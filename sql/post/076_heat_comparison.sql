-- The heat-map statistics' core-vs-rest tests, published in schema api (the rows are
-- written by flows/heat_stats.py: scipy's Welch t and Mann-Whitney U, as api.area_comparison).

COMMENT ON TABLE streetaudit.heat_comparison_result IS
    'Written by `explain` and `detect heat-stats` (scipy): per model, CAM method and target, each core area (area_id NULL = all cores together) against the rest of the city, per heat statistic; the unit is the image.';

CREATE OR REPLACE VIEW api.heat_comparison AS
    SELECT model_id, method, target, area_id, area_name, statistic, n_core, n_rest, mean_core, mean_rest,
           mean_diff, cohens_d, welch_t, welch_df, welch_p, welch_p_holm, mannwhitney_u, mannwhitney_p,
           mannwhitney_p_holm, computed_at
    FROM streetaudit.heat_comparison_result
    ORDER BY model_id, method, target, area_id NULLS FIRST,
             array_position(ARRAY['inside_boxes', 'on_building', 'facade_height', 'upper_third'], statistic);
COMMENT ON VIEW api.heat_comparison IS
    'Per model, CAM method and target: core area (NULL: all cores together) vs rest of the city per heat statistic (inside_boxes, on_building, facade_height, upper_third; the unit is the image): mean_diff = core - rest, Cohen''s d (pooled sd), Welch t/df/p, Mann-Whitney U (two-sided) and p; *_holm = Holm-adjusted across the four statistics of that comparison.';
