-- Streets: the input's lines merged into continuous streets and split at junctions (and,
-- optionally, every M metres), so that statistics do not follow however the road file
-- happens to split its lines. Built by streetaudit.build_streets (sql/post/032_streets.sql).
--
-- Sample points do not reference streets: a point maps to the street piece of its road
-- that holds its distance along the road (streetaudit.point_street), so a rebuild
-- replaces streets and pieces and never touches a point, an image or a segmentation.

CREATE TABLE IF NOT EXISTS streetaudit.street (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The member road ranges, hashed: a rebuild that gives the same street keeps its id.
    key text NOT NULL UNIQUE,
    name text,
    kind text,
    length_m double precision NOT NULL CHECK (length_m > 0),
    road_ids bigint[] NOT NULL,
    geom geometry(LineString, 4326) NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS street_geom_idx ON streetaudit.street USING gist (geom);

-- Which stretch of which road belongs to which street: metres along the road, measured
-- as densify measures a point's distance_m (the road's UTM zone).
CREATE TABLE IF NOT EXISTS streetaudit.street_piece (
    street_id bigint NOT NULL REFERENCES streetaudit.street (id) ON DELETE CASCADE,
    road_id bigint NOT NULL REFERENCES streetaudit.road (id) ON DELETE CASCADE,
    from_m double precision NOT NULL CHECK (from_m >= 0),
    to_m double precision NOT NULL,
    PRIMARY KEY (road_id, from_m),
    CHECK (to_m > from_m)
);
CREATE INDEX IF NOT EXISTS street_piece_street_idx ON streetaudit.street_piece (street_id);

-- The parameters of the last build, so a report can say how its streets were made.
CREATE TABLE IF NOT EXISTS streetaudit.street_build (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    split_by text NOT NULL CHECK (split_by IN ('junction', 'name')),
    max_length_m double precision,
    built_at timestamptz NOT NULL DEFAULT now()
);
