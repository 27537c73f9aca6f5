-- Least privilege for streetaudit_reader, the login role of the API, pg_tileserv and analysts.
-- The API connects *as* this role (never as the owner with SET ROLE, which a filter could
-- undo with set_config('role', ...)), so what the role cannot do, no HTTP request can do.
-- The first defence is the API's CQL filter allow-list (api/ogc_guard.py); this file is the
-- second: even arbitrary SQL typed by the reader cannot write, read files, hold connections
-- for long, or fill the disk with temporary tables.

-- No attributes beyond LOGIN. NOINHERIT: a role granted to the reader by mistake later does
-- not silently widen what every reader connection may do. Role attributes and settings are
-- cluster-wide; a migrating user without CREATEROLE gets a warning instead of a failure,
-- and the API refuses to start on a role that can write (api/role_check.py).
DO $$
BEGIN
    ALTER ROLE streetaudit_reader NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
    -- A bound on every statement; the API also sets its own at connect
    -- (STREETAUDIT_API_STATEMENT_TIMEOUT_MS).
    ALTER ROLE streetaudit_reader SET statement_timeout = '5s';
    ALTER ROLE streetaudit_reader SET idle_in_transaction_session_timeout = '60s';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'cannot harden role streetaudit_reader (%); ask an administrator to run '
        'ALTER ROLE streetaudit_reader NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT SET statement_timeout = ''5s''', SQLERRM;
END
$$;

-- No temporary tables or functions for PUBLIC (the reader included); the owner, who loads
-- roads and segmentations through temporary tables, keeps the privilege. A database cloned
-- with CREATE DATABASE ... TEMPLATE does not inherit this (database ACLs are not copied).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO CURRENT_USER', current_database());
END
$$;

-- Functions every role may call by default that write (large objects, notifications),
-- block others (advisory locks: `db migrate` takes one), stall a connection (pg_sleep),
-- change the session (set_config) or signal other backends. PostGIS (schema public) is
-- untouched: the tile functions need it. pg_advisory_unlock_all stays: asyncpg's pool
-- calls it when a connection is released. Only superusers own these functions; for
-- anyone else REVOKE is a no-op with a warning.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
        FROM pg_proc AS p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace
          AND (p.proname IN ('lo_creat', 'lo_create', 'lo_open', 'lo_close', 'loread', 'lowrite',
                             'lo_lseek', 'lo_lseek64', 'lo_tell', 'lo_tell64', 'lo_unlink',
                             'lo_truncate', 'lo_truncate64', 'lo_from_bytea', 'lo_get', 'lo_put',
                             'lo_import', 'lo_export',
                             'pg_sleep', 'pg_sleep_for', 'pg_sleep_until', 'set_config',
                             'pg_notify', 'pg_cancel_backend', 'pg_terminate_backend')
               OR p.proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$')
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO CURRENT_USER', fn);
    END LOOP;
END
$$;
