-- What the schemas and the reader role are for (psql \dn+, QGIS and pg_tileserv show it).

COMMENT ON SCHEMA streetaudit IS 'streetaudit: tables written by the pipeline (not for readers).';
COMMENT ON SCHEMA api IS 'streetaudit: views and tile functions published to readers.';
COMMENT ON ROLE streetaudit_reader IS 'Read-only access to schema api (views and tile functions).';
