-- Views facing the same way relative to the street (collect --relative-headings, issue #12
-- item 14): the road-relative direction a view was asked for (0 ahead, 90 right, 180
-- behind, 270 left of the road's bearing at the point); NULL for a compass heading.
-- heading stays the compass direction sent to the provider. Comment: post/037_road_bearing.sql.
ALTER TABLE streetaudit.image ADD COLUMN IF NOT EXISTS relative_heading double precision
    CHECK (relative_heading >= 0 AND relative_heading < 360);
