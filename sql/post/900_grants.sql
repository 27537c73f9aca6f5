-- Privileges on what the files before this one define. Any of them may just have been
-- created anew, and a dropped object takes its grants with it; default privileges (set
-- in 001_schemas_roles.sql) cover only objects of the role that set them.
GRANT USAGE ON SCHEMA api TO streetaudit_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO streetaudit_reader;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api TO streetaudit_reader;
-- The helpers (densify, tile encoding, refresh) run for the pipeline's role or inside the
-- SECURITY DEFINER tile functions only.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA streetaudit FROM PUBLIC;
