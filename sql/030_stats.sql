-- Statistics: the tables behind the published statistics (the views are in post/030_stats.sql).
--
-- Everything is computed from ONE segmentation model, recorded in streetaudit.stats_state
-- by `streetaudit stats refresh` (the most recent model unless --model says otherwise).

CREATE TABLE IF NOT EXISTS streetaudit.stats_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    model_id bigint REFERENCES streetaudit.model (id) ON DELETE SET NULL,
    version bigint NOT NULL DEFAULT 0,
    refreshed_at timestamptz
);
INSERT INTO streetaudit.stats_state (singleton) VALUES (true) ON CONFLICT DO NOTHING;

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
