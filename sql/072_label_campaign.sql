-- Settings of the /label page (the raters' box drawing): the labels a box may carry and
-- how many of a rater's top images they are offered (the method: each rater's top 500).
-- Functions: sql/post/070_label.sql.

CREATE TABLE IF NOT EXISTS streetaudit.label_campaign (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    labels text[] NOT NULL DEFAULT '{window,roof,ornament}'
        CHECK (cardinality(labels) BETWEEN 1 AND 50 AND array_position(labels, NULL) IS NULL),
    top_n integer NOT NULL DEFAULT 500 CHECK (top_n BETWEEN 1 AND 5000),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO streetaudit.label_campaign (singleton) VALUES (true) ON CONFLICT DO NOTHING;
COMMENT ON TABLE streetaudit.label_campaign IS
    'Settings of the /label page: the labels a box may carry (the page''s buttons and keys 1..9, in this order) and how many of each rater''s top images it offers.';
