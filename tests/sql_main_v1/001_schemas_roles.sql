-- Foundation: PostGIS, the two schemas and the read-only role.
-- `streetaudit` holds the tables the pipeline writes; `api` holds only what readers
-- (analysts, pg_tileserv, QGIS) may see. Idempotent, like every migration.

-- Explicitly in public: the superuser of the private cluster is called streetaudit, so
-- "$user" in the default search_path would otherwise put PostGIS in our table schema.
CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public;

CREATE SCHEMA IF NOT EXISTS streetaudit;
CREATE SCHEMA IF NOT EXISTS api;
COMMENT ON SCHEMA streetaudit IS 'streetaudit: tables written by the pipeline (not for readers).';
COMMENT ON SCHEMA api IS 'streetaudit: views and tile functions published to readers.';

DO $$
BEGIN
    CREATE ROLE streetaudit_reader LOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;
COMMENT ON ROLE streetaudit_reader IS 'Read-only access to schema api (views and tile functions).';

-- Readers see api and nothing of streetaudit; nobody but the owner creates objects in public.
REVOKE ALL ON SCHEMA streetaudit FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO streetaudit_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO streetaudit_reader;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api TO streetaudit_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA api GRANT SELECT ON TABLES TO streetaudit_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA api GRANT EXECUTE ON FUNCTIONS TO streetaudit_reader;
-- Functions are executable by PUBLIC by default; in streetaudit they must not be.
ALTER DEFAULT PRIVILEGES IN SCHEMA streetaudit REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
