-- Pairwise rating of historic character: raters, the campaign's image pool, the record of
-- choices, derived ratings, and the functions the raters' web page calls.
--
-- `comparison` is the record: rows are only ever appended (undo marks a row, it never
-- deletes or rewrites it), so every rating can be recomputed from it. The web page acts
-- as the login role streetaudit_rater, which may do nothing but execute the functions in
-- schema rating_api; those are SECURITY DEFINER and check the rater's token on every call.
-- They live outside schema api because readers are granted every function in api.

CREATE SCHEMA IF NOT EXISTS rating_api;
COMMENT ON SCHEMA rating_api IS
    'streetaudit: the functions the raters'' web page calls (token-checked; executable by streetaudit_rater only).';
REVOKE ALL ON SCHEMA rating_api FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA rating_api REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

DO $$
BEGIN
    CREATE ROLE streetaudit_rater LOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;
COMMENT ON ROLE streetaudit_rater IS 'The raters'' web page: may only execute the functions in schema rating_api.';
GRANT USAGE ON SCHEMA rating_api TO streetaudit_rater;

CREATE TABLE IF NOT EXISTS streetaudit.rater (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    active boolean GENERATED ALWAYS AS (revoked_at IS NULL) STORED,
    decided integer NOT NULL DEFAULT 0,
    skipped integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE streetaudit.rater IS
    'People who rate image pairs. Only the SHA-256 (hex) of their personal token is kept; `streetaudit raters add` prints the token once. decided/skipped count their comparisons not undone (kept by submit_choice and undo_last, so progress costs no count).';

CREATE TABLE IF NOT EXISTS streetaudit.rating_campaign (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    strategy text NOT NULL DEFAULT 'adaptive' CHECK (strategy IN ('adaptive', 'random')),
    area text,
    target integer NOT NULL DEFAULT 1000 CHECK (target > 0),
    k double precision NOT NULL DEFAULT 32 CHECK (k > 0),
    repeat_share double precision NOT NULL DEFAULT 0.05 CHECK (repeat_share BETWEEN 0 AND 1),
    question text NOT NULL DEFAULT 'Which street has the stronger sense of history and culture?',
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO streetaudit.rating_campaign (singleton) VALUES (true) ON CONFLICT DO NOTHING;
COMMENT ON TABLE streetaudit.rating_campaign IS
    'Settings of the rating campaign (`streetaudit ratings campaign`): pool (area NULL = all core heritage areas), pair strategy, target comparisons per rater, ELO K, share of pairs repeated from another rater (for agreement).';

CREATE TABLE IF NOT EXISTS streetaudit.rating_image (
    image_id bigint PRIMARY KEY REFERENCES streetaudit.image (id) ON DELETE CASCADE,
    in_pool boolean NOT NULL DEFAULT true,
    elo double precision NOT NULL DEFAULT 1500,
    n integer NOT NULL DEFAULT 0,
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rating_image_pool_idx ON streetaudit.rating_image (n) WHERE in_pool;
CREATE INDEX IF NOT EXISTS rating_image_elo_idx ON streetaudit.rating_image (elo) WHERE in_pool;
COMMENT ON TABLE streetaudit.rating_image IS
    'Images of the rating campaign: in_pool marks the current pool; elo and n (decided comparisons) are the pooled ELO updated online by each choice, which adaptive pairing reads. `ratings recompute` resets them from the record.';

CREATE TABLE IF NOT EXISTS streetaudit.comparison (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rater_id bigint NOT NULL REFERENCES streetaudit.rater (id),
    left_image bigint NOT NULL REFERENCES streetaudit.image (id),
    right_image bigint NOT NULL REFERENCES streetaudit.image (id),
    choice text NOT NULL CHECK (choice IN ('left', 'right', 'skip')),
    shown_at timestamptz,
    answered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    client jsonb,
    elo_delta double precision,
    undone_at timestamptz,
    CHECK (left_image <> right_image)
);
-- A rater judges a pair at most once (an undone judgement frees the pair again).
CREATE UNIQUE INDEX IF NOT EXISTS comparison_rater_pair_key ON streetaudit.comparison
    (rater_id, least(left_image, right_image), greatest(left_image, right_image)) WHERE undone_at IS NULL;
CREATE INDEX IF NOT EXISTS comparison_rater_left_idx ON streetaudit.comparison (rater_id, left_image);
CREATE INDEX IF NOT EXISTS comparison_rater_right_idx ON streetaudit.comparison (rater_id, right_image);
COMMENT ON TABLE streetaudit.comparison IS
    'The record of pairwise choices, append-only: the id is drawn after the two images are locked, so id order is the order the online ELO applied them. undone_at is set (once) by undo; nothing else ever changes.';
COMMENT ON COLUMN streetaudit.comparison.elo_delta IS
    'What the choice added to the left image''s online ELO (and took from the right one''s); NULL for a skip.';
COMMENT ON COLUMN streetaudit.comparison.client IS 'What the page reported: user agent, viewport, time to answer.';

CREATE OR REPLACE FUNCTION streetaudit.comparison_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'streetaudit.comparison is append-only: rows are never deleted';
    END IF;
    IF OLD.undone_at IS NOT NULL OR NEW.undone_at IS NULL
       OR (NEW.id, NEW.rater_id, NEW.left_image, NEW.right_image, NEW.choice, NEW.shown_at, NEW.answered_at,
           NEW.client, NEW.elo_delta)
          IS DISTINCT FROM
          (OLD.id, OLD.rater_id, OLD.left_image, OLD.right_image, OLD.choice, OLD.shown_at, OLD.answered_at,
           OLD.client, OLD.elo_delta) THEN
        RAISE EXCEPTION 'streetaudit.comparison is append-only: only undone_at may be set, once';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS comparison_append_only ON streetaudit.comparison;
CREATE TRIGGER comparison_append_only BEFORE UPDATE OR DELETE ON streetaudit.comparison
    FOR EACH ROW EXECUTE FUNCTION streetaudit.comparison_append_only();

-- Pairs handed to a rater and not yet answered (the page preloads one ahead), with when
-- they were shown; a choice must answer an offered pair.
CREATE TABLE IF NOT EXISTS streetaudit.rating_offer (
    rater_id bigint NOT NULL REFERENCES streetaudit.rater (id) ON DELETE CASCADE,
    low_image bigint NOT NULL,
    high_image bigint NOT NULL,
    left_image bigint NOT NULL,
    right_image bigint NOT NULL,
    shown_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (rater_id, low_image, high_image)
);

CREATE TABLE IF NOT EXISTS streetaudit.rating (
    image_id bigint NOT NULL REFERENCES streetaudit.image (id) ON DELETE CASCADE,
    method text NOT NULL CHECK (method IN ('elo', 'bt')),
    rater_id bigint REFERENCES streetaudit.rater (id) ON DELETE CASCADE,
    score double precision NOT NULL,
    se double precision,
    n integer NOT NULL,
    wins integer NOT NULL,
    computed_at timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (image_id, method, rater_id)
);
CREATE INDEX IF NOT EXISTS rating_method_rater_idx ON streetaudit.rating (method, rater_id, score DESC);
COMMENT ON TABLE streetaudit.rating IS
    'Ratings derived from comparison by `streetaudit ratings recompute`: method elo (initial 1500, the campaign''s K, answer order) or bt (Bradley-Terry MAP in logits, se from the inverse Hessian); rater_id NULL = pooled over all raters.';

CREATE TABLE IF NOT EXISTS streetaudit.rating_status (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    computed_at timestamptz NOT NULL DEFAULT now(),
    status jsonb NOT NULL
);
COMMENT ON TABLE streetaudit.rating_status IS
    'Snapshots of `streetaudit ratings status` (reliability, stability, agreement); the latest is published to readers (view rating_status in schema api).';

-- The rating functions (token checks, pairs, choices) are sources: sql/post/060_ratings.sql.
