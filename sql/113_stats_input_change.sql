-- What changed in the statistics' inputs since the last `stats refresh` (issue #13 item 2),
-- so a refresh with nothing to do can say so instead of recomputing the city.
--
-- One row per transaction and table written, of the tables the published statistics read
-- (images, segmentations, points, roads, heritage areas, streets), made by a statement-level
-- trigger: a bulk INSERT … SELECT of a million segmentations adds one row, and so does a
-- collect batch upserting its images one statement each. Concurrent writers only append
-- rows of their own transaction (no row they would all update and wait on). The refresh deletes the rows it
-- saw before it reads any data, so a change committed while it runs stays for the next one.
CREATE TABLE IF NOT EXISTS streetaudit.stats_input_change (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation text NOT NULL,
    operation text NOT NULL,
    xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
    changed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (xact, relation, operation)
);

-- What the last refresh published from, beyond the selection (model, provider,
-- complete_only): the comparison's parameters, and whether the change log was kept since
-- (NULL on a database refreshed before this migration: its first refresh is full).
ALTER TABLE streetaudit.stats_state
    ADD COLUMN IF NOT EXISTS holm_family text,
    ADD COLUMN IF NOT EXISTS permutations integer,
    ADD COLUMN IF NOT EXISTS inputs_tracked_at timestamptz;

-- SECURITY DEFINER: a role that may write one of these tables need not be granted the log.
CREATE OR REPLACE FUNCTION streetaudit.note_stats_input_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    INSERT INTO streetaudit.stats_input_change (relation, operation) VALUES (TG_TABLE_NAME, TG_OP)
    ON CONFLICT (xact, relation, operation) DO NOTHING;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION streetaudit.note_stats_input_change() IS
    'Statement trigger: log that a table the published statistics read was written (streetaudit.stats_input_change).';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['image', 'segmentation', 'sample_point', 'road', 'heritage_area', 'street', 'street_piece'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS stats_input_change ON streetaudit.%I', t);
        EXECUTE format(
            'CREATE TRIGGER stats_input_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON streetaudit.%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION streetaudit.note_stats_input_change()', t);
    END LOOP;
END
$$;
