-- Statistics of one (provider, model) selection, and street-level inference beside the
-- point-level tests (issue #12 items 2, 13, 14, 15). Views and comments: post/030_stats.sql.

-- Which images the published statistics come from: one provider (views of different
-- providers at a point are never averaged together) and, with complete_only, only points
-- whose every recorded view is usable.
ALTER TABLE streetaudit.stats_state
    ADD COLUMN IF NOT EXISTS provider text,
    ADD COLUMN IF NOT EXISTS complete_only boolean NOT NULL DEFAULT false;

-- A database published before the selection existed keeps what it showed as far as one
-- provider can: the provider with the most ok images.
UPDATE streetaudit.stats_state
SET provider = (SELECT i.provider FROM streetaudit.image AS i WHERE i.status = 'ok'
                GROUP BY i.provider ORDER BY count(*) DESC, i.provider LIMIT 1)
WHERE model_id IS NOT NULL AND provider IS NULL;

ALTER TABLE streetaudit.area_comparison_result
    ADD COLUMN IF NOT EXISTS provider text,
    ADD COLUMN IF NOT EXISTS complete_only boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS n_images_core integer,
    ADD COLUMN IF NOT EXISTS n_images_rest integer,
    ADD COLUMN IF NOT EXISTS holm_family text NOT NULL DEFAULT 'elements'
        CHECK (holm_family IN ('elements', 'all')),
    ADD COLUMN IF NOT EXISTS cluster_unit text,
    ADD COLUMN IF NOT EXISTS n_clusters_core integer,
    ADD COLUMN IF NOT EXISTS n_clusters_rest integer,
    ADD COLUMN IF NOT EXISTS n_permutations integer,
    ADD COLUMN IF NOT EXISTS permutation_p double precision,
    ADD COLUMN IF NOT EXISTS permutation_p_holm double precision,
    ADD COLUMN IF NOT EXISTS cluster_diff double precision,
    ADD COLUMN IF NOT EXISTS cluster_se double precision,
    ADD COLUMN IF NOT EXISTS cluster_ci_low double precision,
    ADD COLUMN IF NOT EXISTS cluster_ci_high double precision,
    ADD COLUMN IF NOT EXISTS cluster_p double precision,
    ADD COLUMN IF NOT EXISTS cluster_p_holm double precision;
