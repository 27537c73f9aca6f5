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

GRANT SELECT ON api.image_ratings, api.rating_status TO streetaudit_reader;
