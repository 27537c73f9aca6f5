-- Roads, heritage areas and the sample points placed along the roads.

CREATE TABLE IF NOT EXISTS streetaudit.road (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    source_id text NOT NULL,
    name text,
    kind text,
    geom geometry(LineString, 4326) NOT NULL,
    length_m double precision NOT NULL CHECK (length_m > 0),
    loaded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);
CREATE INDEX IF NOT EXISTS road_geom_idx ON streetaudit.road USING gist (geom);
COMMENT ON TABLE streetaudit.road IS
    'Road centre lines, one row per single line (multi-lines are split); source + source_id name the feature in its file.';
COMMENT ON COLUMN streetaudit.road.length_m IS 'Geodesic length in metres.';

CREATE TABLE IF NOT EXISTS streetaudit.heritage_area (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    source_id text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL DEFAULT 'core',
    geom geometry(MultiPolygon, 4326) NOT NULL,
    area_m2 double precision NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);
CREATE INDEX IF NOT EXISTS heritage_area_geom_idx ON streetaudit.heritage_area USING gist (geom);
COMMENT ON TABLE streetaudit.heritage_area IS
    'Heritage (historic core) areas; kind core by default. Statistics compare them with the rest of the city.';

CREATE TABLE IF NOT EXISTS streetaudit.sample_point (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    road_id bigint NOT NULL,
    seq integer NOT NULL CHECK (seq >= 0),
    distance_m double precision NOT NULL CHECK (distance_m >= 0),
    geom geometry(Point, 4326) NOT NULL,
    -- Named, because densify_roads drops and re-creates them around bulk inserts.
    CONSTRAINT sample_point_road_fk FOREIGN KEY (road_id) REFERENCES streetaudit.road (id) ON DELETE CASCADE,
    CONSTRAINT sample_point_road_seq_key UNIQUE (road_id, seq)
);
CREATE INDEX IF NOT EXISTS sample_point_geom_idx ON streetaudit.sample_point USING gist (geom);
COMMENT ON TABLE streetaudit.sample_point IS
    'Points every interval metres along each road (seq 0 at its start), where imagery is collected.';
