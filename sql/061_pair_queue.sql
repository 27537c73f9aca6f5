-- Adaptive pairs planned in rounds instead of searched for on every request.
--
-- A round pairs every image of the pool once, neighbours in (jittered) online ELO, pairs of
-- images with the fewest comparisons first, and is stored here; next_pair takes the first
-- queued pair the rater has not judged and does not hold on offer (FOR UPDATE SKIP LOCKED,
-- so concurrent raters take different pairs and different images) and plans the next
-- round when none is left. Pair selection then costs one short index scan per request
-- instead of a search of the pool (sql/post/060_ratings.sql).

CREATE TABLE IF NOT EXISTS streetaudit.pair_queue (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    round integer NOT NULL,
    low_image bigint NOT NULL,
    high_image bigint NOT NULL,
    CHECK (low_image < high_image)
);
COMMENT ON TABLE streetaudit.pair_queue IS
    'Adaptive pairs planned a round at a time (every pool image once, neighbours in jittered online ELO, fewest comparisons first), taken in id order when raters ask for their next pair; derived, emptied whenever the pool or the campaign is set.';
