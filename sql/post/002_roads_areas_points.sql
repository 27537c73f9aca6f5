-- Documentation of the road, heritage area and sample point tables.

COMMENT ON TABLE streetaudit.road IS
    'Road centre lines, one row per single line (multi-lines are split); source + source_id name the feature in its file.';
COMMENT ON COLUMN streetaudit.road.length_m IS 'Geodesic length in metres.';
COMMENT ON TABLE streetaudit.heritage_area IS
    'Heritage (historic core) areas; kind core by default. Statistics compare them with the rest of the city.';
COMMENT ON TABLE streetaudit.sample_point IS
    'Points every interval metres along each road (seq 0 at its start), where imagery is collected.';

-- The one definition of "this sample point is in that heritage area": its point intersects the
-- area's polygon. Statistics (api.point_elements), collection (--where-area, core first),
-- prediction, heat statistics, the demo and the plots all ask this view.
CREATE OR REPLACE VIEW streetaudit.point_area AS
    SELECT p.id AS point_id, a.id AS area_id, a.name AS area_name, a.kind
    FROM streetaudit.sample_point AS p
    JOIN streetaudit.heritage_area AS a ON ST_Intersects(a.geom, p.geom);
COMMENT ON VIEW streetaudit.point_area IS
    'Each (sample point, heritage area it lies in) pair: the one definition of a point being in an area (retired points included; callers filter).';
