"""Refuse to serve HTTP as a database user that could write or escalate.

The API's safety rests on connecting *as* a read-only login role: whatever a request makes
the database run, the role's privileges bound it. Given the owner's URL (a superuser in the
private cluster), one SQL injection would be a full compromise, so the API checks the
connected role at start and stops with a clear message instead.
"""

from __future__ import annotations

import psycopg
from psycopg import AsyncConnection

from streetaudit.sql.errors import StreetauditError
from streetaudit.sql.rows import scalar

READER_ROLE = "streetaudit_reader"

# One row per reason the connected role is unfit to serve; no rows: read-only. Ownership is
# covered by the privilege checks (an owner holds every privilege on what it owns).
_PROBLEMS = """
SELECT problem FROM (
    SELECT 'is a superuser' AS problem FROM pg_roles WHERE rolname = current_user AND rolsuper
    UNION ALL SELECT 'may create roles' FROM pg_roles WHERE rolname = current_user AND rolcreaterole
    UNION ALL SELECT 'may create databases' FROM pg_roles WHERE rolname = current_user AND rolcreatedb
    UNION ALL SELECT 'may bypass row security' FROM pg_roles WHERE rolname = current_user AND rolbypassrls
    UNION ALL SELECT 'may replicate' FROM pg_roles WHERE rolname = current_user AND rolreplication
    UNION ALL
    SELECT format('is a member of %s', r.rolname) FROM pg_roles AS r
    WHERE r.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program',
                        'pg_read_all_data', 'pg_write_all_data', 'pg_database_owner')
      AND r.rolname <> current_user AND pg_has_role(current_user, r.oid, 'MEMBER')
    UNION ALL
    SELECT format('owns or may create objects in schema %s', n.nspname) FROM pg_namespace AS n
    WHERE n.nspname IN ('streetaudit', 'api', 'public', 'tipg')
      AND (pg_has_role(current_user, n.nspowner, 'USAGE') OR has_schema_privilege(n.oid, 'CREATE'))
    UNION ALL
    SELECT format('may write %s.%s', n.nspname, c.relname)
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('streetaudit', 'api')
      AND ((c.relkind IN ('r', 'p', 'v', 'f')
            AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))
           OR (c.relkind = 'S' AND has_sequence_privilege(c.oid, 'USAGE, UPDATE')))
) AS p
LIMIT 4
"""


class UnsafeRole(StreetauditError):
    """The API was given a database user that can do more than read schema api."""


def refusal(user: str, problems: list[str]) -> UnsafeRole:
    return UnsafeRole(
        f"refusing to serve as database user {user!r}: it {', '.join(problems)}. Set "
        f"STREETAUDIT_API_DATABASE_URL to a URL of the read-only role {READER_ROLE} "
        "(`streetaudit db url --reader` prints the private cluster's)"
    )


def check_read_only(url: str, connect_timeout: int = 5) -> None:
    """Raise UnsafeRole unless `url` logs in as a read-only role (for `streetaudit serve`)."""
    try:
        with psycopg.connect(url, connect_timeout=connect_timeout) as conn:
            user = scalar(conn.execute("SELECT current_user"))
            problems = [row[0] for row in conn.execute(_PROBLEMS).fetchall()]
    except psycopg.OperationalError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UnsafeRole(f"cannot connect to the API's database: {reason}") from None
    if problems:
        raise refusal(user, problems)


async def ensure_read_only(conn: AsyncConnection) -> None:
    """The same check from the app's own pool, so `uvicorn streetaudit.api.app:app` is covered too."""
    row = await (await conn.execute("SELECT current_user")).fetchone()
    assert row is not None  # SELECT current_user always answers
    user = row[0]
    problems = [row[0] for row in await (await conn.execute(_PROBLEMS)).fetchall()]
    if problems:
        raise refusal(user, problems)
