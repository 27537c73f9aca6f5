-- Documentation of the road, heritage area and sample point tables.

COMMENT ON TABLE streetaudit.road IS
    'Road centre lines, one row per single line (multi-lines are split); source + source_id name the feature in its file.';
COMMENT ON COLUMN streetaudit.road.length_m IS 'Geodesic length in metres.';
COMMENT ON TABLE streetaudit.heritage_area IS
    'Heritage (historic core) areas; kind core by default. Statistics compare them with the rest of the city.';
COMMENT ON TABLE streetaudit.sample_point IS
    'Points every interval metres along each road (seq 0 at its start), where imagery is collected.';
