-- Comparisons found by their pair, whoever judged it: plan_pair_round (sql/post/060_ratings.sql)
-- asks whether two images were compared before, to pair each with one it has not met, so
-- that the rounds' comparisons join the pool into one well-connected graph rather than
-- repeating the same neighbours' contests.

CREATE INDEX IF NOT EXISTS comparison_pair_idx ON streetaudit.comparison
    (least(left_image, right_image), greatest(left_image, right_image)) WHERE undone_at IS NULL;
