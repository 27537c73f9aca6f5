-- Street-view images: one row per (sample point, provider, heading) view.
-- Rows are written before the file is final only as status 'error'/'missing'; a row says
-- 'ok' only after its file is completely stored (temp + rename), so a crash never leaves
-- an 'ok' row pointing at a partial file.

CREATE TABLE IF NOT EXISTS streetaudit.image (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    point_id bigint NOT NULL REFERENCES streetaudit.sample_point (id) ON DELETE CASCADE,
    provider text NOT NULL,
    pano_id text,
    heading double precision NOT NULL,
    pitch double precision NOT NULL DEFAULT 0,
    fov double precision NOT NULL DEFAULT 90,
    width integer,
    height integer,
    captured_at timestamptz,
    geom geometry(Point, 4326),
    uri text,
    sha256 text,
    bytes bigint,
    status text NOT NULL CHECK (status IN ('ok', 'missing', 'error', 'excluded')),
    detail text,
    attempts integer NOT NULL DEFAULT 0,
    fetched_at timestamptz,
    UNIQUE (point_id, provider, heading)
);
CREATE INDEX IF NOT EXISTS image_status_idx ON streetaudit.image (status);
CREATE INDEX IF NOT EXISTS image_sha256_idx ON streetaudit.image (sha256);
COMMENT ON TABLE streetaudit.image IS
    'One street-view image per (point, provider, heading). status: ok, missing (no imagery), error (failed after retries), excluded (removed by cleaning; detail says why).';
COMMENT ON COLUMN streetaudit.image.geom IS 'Where the provider says the panorama was taken (may differ from the sample point).';
COMMENT ON COLUMN streetaudit.image.detail IS 'Reason for missing/error/excluded; never contains a key or secret.';
