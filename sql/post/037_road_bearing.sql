-- The road's bearing at a sample point, and the compass headings of road-relative views.
--
-- A compass heading (0/90/180/270) shows a different part of the street depending on how
-- the road runs: on a north-south road 0 looks along it, on an east-west road across it.
-- `collect --relative-headings 0,90,180,270` asks instead for ahead, right, behind and left
-- of the road's direction at the point, so every point's views face the same way relative
-- to its street.

-- Compass bearing (degrees clockwise from north, 0..360) of `road` at the point of it
-- nearest `at`: the geodesic azimuth between the road's points about `half_m` metres before
-- and after (clamped to the road's ends), so a bend elsewhere on the road does not count.
-- The window is a fraction of the road's length (half_m / length_m), an exact metre
-- distance only on a road of uniform direction; NULL if the road has no length.
CREATE OR REPLACE FUNCTION streetaudit.road_bearing(
    road geometry, length_m double precision, at geometry, half_m double precision DEFAULT 5
)
RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT degrees(ST_Azimuth(
               ST_LineInterpolatePoint(road, greatest(f.fraction - f.half, 0))::geography,
               ST_LineInterpolatePoint(road, least(f.fraction + f.half, 1))::geography))
    FROM (SELECT ST_LineLocatePoint(road, at) AS fraction,
                 least(0.5, half_m / nullif(length_m, 0)) AS half) AS f
$$;
COMMENT ON FUNCTION streetaudit.road_bearing(geometry, double precision, geometry, double precision) IS
    'Compass bearing (degrees from north, clockwise) of the road at the point nearest `at`: geodesic azimuth between the road points half_m metres (by fraction of length_m) before and after.';

-- The compass headings of road-relative views at a sample point, in the order of `offsets`:
-- (bearing + offset) mod 360, rounded to 0.01 degree so that every run computes the same
-- value and (point, provider, heading) finds the view stored before. NULL if no bearing.
CREATE OR REPLACE FUNCTION streetaudit.relative_headings(point_id bigint, offsets double precision[])
RETURNS double precision[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT array_agg(mod(round((b.bearing + o.offset_deg)::numeric, 2), 360)::double precision
                     ORDER BY o.n)
    FROM streetaudit.sample_point AS p
    JOIN streetaudit.road AS r ON r.id = p.road_id
    CROSS JOIN LATERAL (SELECT streetaudit.road_bearing(r.geom, r.length_m, p.geom) AS bearing) AS b
    CROSS JOIN LATERAL unnest(offsets) WITH ORDINALITY AS o (offset_deg, n)
    WHERE p.id = point_id AND b.bearing IS NOT NULL
$$;
COMMENT ON FUNCTION streetaudit.relative_headings(bigint, double precision[]) IS
    'Compass headings of the road-relative views `offsets` (0 ahead, 90 right, 180 behind, 270 left) at a sample point: (road bearing + offset) mod 360, rounded to 0.01 degree; NULL when the road has no bearing.';

COMMENT ON COLUMN streetaudit.image.relative_heading IS
    'The road-relative direction this view was asked for (collect --relative-headings: 0 ahead, 90 right, 180 behind, 270 left of the road bearing at the point); NULL for a compass heading. heading is the compass direction sent.';
