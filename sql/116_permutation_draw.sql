-- The permutation test's draws (flows/street_inference.py draw_core_units), kept between
-- stats refreshes: they depend only on which units (streets split at the core boundary) are
-- core, the number of permutations and the seed, and at a city's scale drawing them was most
-- of the comparison's time, which every refresh, incremental ones included, recomputes.
-- key: a hash of those inputs and of numpy's version (whose generator draws them);
-- core_units: the permutations × n_core array of unit indices, int32, row-major.
CREATE TABLE IF NOT EXISTS streetaudit.permutation_draw (
    key text PRIMARY KEY,
    n_permutations integer NOT NULL,
    n_core integer NOT NULL,
    core_units bytea NOT NULL,
    drawn_at timestamptz NOT NULL DEFAULT now()
);
-- Unit indices hardly compress: stored without trying.
ALTER TABLE streetaudit.permutation_draw ALTER COLUMN core_units SET STORAGE EXTERNAL;
