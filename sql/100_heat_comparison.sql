-- Core vs rest of the city for the heat-map statistics: the tests need scipy, so the
-- explain flow (and `detect heat-stats`) compute them and store them here, one set per
-- model, method and target; api.heat_comparison (post/076) publishes them.
CREATE TABLE IF NOT EXISTS streetaudit.heat_comparison_result (
    model_id bigint NOT NULL REFERENCES streetaudit.model (id) ON DELETE CASCADE,
    method text NOT NULL,
    target text NOT NULL,
    area_id bigint,
    area_name text NOT NULL,
    statistic text NOT NULL CHECK (statistic IN ('inside_boxes', 'on_building', 'facade_height', 'upper_third')),
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
    computed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS heat_comparison_result_run_idx
    ON streetaudit.heat_comparison_result (model_id, method, target);

-- The default detector of the api.detections tiles is the one that predicted last when no
-- finished training run has predictions: found from this index, not a scan, per tile.
CREATE INDEX IF NOT EXISTS detection_done_predicted_at_idx ON streetaudit.detection_done (predicted_at);
