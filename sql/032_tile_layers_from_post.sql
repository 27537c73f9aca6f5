-- Objects of the old 031_tiles.sql that post/031_tiles.sql no longer defines: the layer
-- table (the layers are now declared in post/031_tiles.sql), the per-layer encoders and
-- the separate overview table. No-ops on a database created after the split.
DROP VIEW IF EXISTS api.tile_layers;
DROP TABLE IF EXISTS streetaudit.tile_layer;
DROP FUNCTION IF EXISTS streetaudit.segments_mvt(integer, integer, integer, text[], integer, boolean);
DROP FUNCTION IF EXISTS streetaudit.points_mvt(integer, integer, integer, text[], integer, boolean);
DROP FUNCTION IF EXISTS streetaudit.areas_mvt(integer, integer, integer, text[], integer, boolean);
DROP MATERIALIZED VIEW IF EXISTS streetaudit.segment_overview;
-- Pre-built tiles are now keyed by the layer id (api.segments); post/031 rebuilds them.
DELETE FROM streetaudit.prebuilt_tile;
