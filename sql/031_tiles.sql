-- Vector tiles: the table of pre-built tiles (the tile functions are in post/031_tiles.sql).
--
-- Zooms below 14 (where the points layer starts) of segments and areas, encoded once by
-- the stats refresh for every tile that can hold a feature: overview tiles are the most
-- requested and the most expensive, they change only on refresh, and a city has a few
-- hundred of them at most. A tile not found here is computed.
CREATE TABLE IF NOT EXISTS streetaudit.prebuilt_tile (
    layer text NOT NULL,
    z integer NOT NULL,
    x integer NOT NULL,
    y integer NOT NULL,
    tile bytea NOT NULL,
    PRIMARY KEY (layer, z, x, y)
);
