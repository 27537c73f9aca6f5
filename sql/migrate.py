"""Bring a database up to the SQL files: numbered migrations once each, then the re-runnable sources.

Where a statement goes (the rule, as in pgstac's idempotent pre/post scripts):

- `sql/NNN_name.sql`, numbered migrations: what holds data or cannot be re-run without
  losing it — extensions, schemas, roles and default privileges, tables, columns, table
  indexes and constraints, data changes. Append-only: applied once each, in order, and
  checksummed; an applied file is never edited (add the next number instead). A migration
  must not use what `sql/post/` defines: on a new database that does not exist yet when
  migrations run. It may DROP such a view when it changes a column the view reads; the
  sources put it back in the same `db migrate`.
- `sql/post/NNN_name.sql`, sources: functions, views, materialized views and derived
  tables (with their indexes), grants and comments. A derived table (`CREATE TABLE … AS`
  from a view of the same file) holds only what that view computes: the stats refresh
  updates it in part, which it could not do to a materialized view. Edited in place. After the migrations, every
  `db migrate` runs again each source whose text changed since it last ran, or one of
  whose objects is missing, together with every source after it (a later one may depend
  on it): first the views, materialized views and functions those files define are
  dropped, in reverse order of definition and without CASCADE (a derived table that is
  still the materialized view it was before is dropped as one) — an object outside the
  sources that depends on one stops the migrate, naming it, rather than silently
  disappearing — and then the files run in order. Materialized views are created with
  their data, computed from the recorded stats model, so published statistics survive;
  post/031_tiles.sql then rebuilds the pre-built tiles and bumps the data version.
  To remove a source object, delete it from its file and add a numbered migration that
  drops it. To rename one, list its old name in _RENAMED: the old object is dropped right
  after the new name's place in the drop order, where its dependents and what it uses are the
  same as the new one's (a migration could not drop it: dependents in the sources still hold it).

Everything runs in one transaction under an advisory lock, so a failing file leaves the
database as it was. A migration file that was applied and later edited is refused before
anything runs: silently diverging schemas are worse than a loud stop.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import sql

from streetaudit.sql.errors import MigrationError
from streetaudit.sql.rows import scalar

MIGRATIONS_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same for every streetaudit process.
_LOCK_KEY = 0x5A_57_EE_7A

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS streetaudit;
CREATE TABLE IF NOT EXISTS streetaudit.schema_migration (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS streetaudit.schema_source (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

# The files of main before the sources were split out (commit 9dc2e78), with the checksums
# such a database recorded. Their tables are exactly what the numbered files of the same
# name create now; what else they held lives in sql/post/. Files not there any more
# (densify, the two comment patches) had nothing else.
_BEFORE_SOURCES = {
    "001_schemas_roles.sql": "03e669a35112846c93ec7c682b58fa270100475d16ae5e9371db8400c3b863f9",
    "002_roads_areas_points.sql": "ca4d09ffff81e3bcf704f7ae67e0bfd76d99ddd97ed12fa1748d3dc513e5f5e2",
    "003_densify.sql": "d2e93ff3d6641c4f4170d4416284922ba4c29884930857e862893b9735538a64",
    "010_image.sql": "2c30ac7f47cb1e1c031989da7069ea3ec0c3094b6cc52825d8f988989ac5e016",
    "011_image_notes.sql": "d3067754ac1a5d2fec015309b20072c28f01f2ddcf9523d4b0111ab8f78eb4c2",
    "020_segmentation.sql": "b458142116166a0f863d6499cca3cbd7847202cb5d2f67fecbb323cc3bf8096e",
    "021_segmentation_comments.sql": "c2f73108523cbec2418f87fb60d8584c4cf5d44d4b6d8e2545142859c3b742ea",
    "030_stats.sql": "e4e88abe902c59dd2873696b1ade85a27c567e95e3546986905287c0ea699594",
    "031_tiles.sql": "9e062fd25be3f1e2024ea161ee42462148c94d0f7513c5306d17c0eb71fe898f",
}

# What a source defines, and so drops before it runs again: statements at the start of a
# line (CREATE inside a function body is indented or names a table).
_DEFINES = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(MATERIALIZED\s+VIEW|VIEW|TABLE|FUNCTION|PROCEDURE)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)",
    re.IGNORECASE | re.MULTILINE,
)


# Source objects renamed since an earlier main: (schema, new name) -> old name. Databases
# built before the rename still hold the old objects; _drop removes them with the new ones.
# The road side was called "segment" before "segment" came to mean segmentation only.
_RENAMED: dict[tuple[str, str], str] = {
    ("api", "road_stats"): "segment_stats",
    ("api", "roads"): "segments",
    ("streetaudit", "road_features"): "segment_tile",
    ("streetaudit", "point_features"): "point_tile",
    ("streetaudit", "area_features"): "area_tile",
    ("streetaudit", "rating_features"): "rating_tile",
}


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Source(Migration):
    @cached_property
    def objects(self) -> list[tuple[str, str, str]]:
        """(kind, schema, name) of each view, materialized view, derived table and function, in file order."""
        return [(" ".join(k.upper().split()), s, n) for k, s, n in _DEFINES.findall(self.sql)]


def _numbered(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.glob("*.sql") if _NAME.match(p.name))
    numbers = [p.name[:3] for p in files]
    duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicated:
        raise MigrationError(f"two files in {directory} share the number(s) {', '.join(duplicated)}")
    return files


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(p.name, p.read_text()) for p in _numbered(directory)]


def discover_sources(directory: Path = MIGRATIONS_DIR / "post") -> list[Source]:
    return [Source(p.name, p.read_text()) for p in _numbered(directory)] if directory.is_dir() else []


def applied(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT name, checksum FROM streetaudit.schema_migration").fetchall()
    return dict(rows)


def adopt_files_before_sources(conn: psycopg.Connection, migrations: list[Migration]) -> None:
    """Record a database built before the split as having the numbered files of today."""
    by_name = {m.name: m for m in migrations}
    for name, checksum in applied(conn).items():
        if _BEFORE_SOURCES.get(name) != checksum:
            continue
        if name in by_name:
            conn.execute(
                "UPDATE streetaudit.schema_migration SET checksum = %s WHERE name = %s",
                (by_name[name].checksum, name),
            )
        else:
            conn.execute("DELETE FROM streetaudit.schema_migration WHERE name = %s", (name,))


def pending(conn: psycopg.Connection, migrations: list[Migration]) -> list[Migration]:
    """Migrations not yet applied; raises if the recorded history disagrees with the files."""
    done = applied(conn)
    by_name = {m.name: m for m in migrations}
    changed = [
        name for name, checksum in done.items() if name in by_name and by_name[name].checksum != checksum
    ]
    if changed:
        raise MigrationError(
            "applied migration file(s) changed since they ran: "
            + ", ".join(sorted(changed))
            + ". Restore them and add a new numbered file for the change (functions, views, "
            "grants and comments belong in sql/post/, which may be edited); nothing was applied."
        )
    missing = sorted(set(done) - set(by_name))
    if missing:
        raise MigrationError(
            f"the database has migration(s) this code does not know: {', '.join(missing)}; "
            "is this an older streetaudit? Nothing was applied."
        )
    return [m for m in migrations if m.name not in done]


def _scalar(conn: psycopg.Connection, query: str, params: tuple = ()) -> object:
    return scalar(conn.execute(query, params))


def _missing_objects(conn: psycopg.Connection, source: Source) -> bool:
    for kind, schema, name in source.objects:
        if kind in ("FUNCTION", "PROCEDURE"):
            found = _scalar(
                conn,
                "SELECT EXISTS (SELECT 1 FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace "
                "WHERE n.nspname = %s AND p.proname = %s)",
                (schema, name),
            )
        else:
            found = _scalar(
                conn, "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (schema, name)
            )
        if not found:
            return True
    return False


def stale(conn: psycopg.Connection, sources: list[Source]) -> list[Source]:
    """The first source that changed or lost an object, and every source after it."""
    done: dict[str, str] = dict(
        conn.execute("SELECT name, checksum FROM streetaudit.schema_source").fetchall()
    )
    for i, source in enumerate(sources):
        if done.get(source.name) != source.checksum or _missing_objects(conn, source):
            return sources[i:]
    return []


def _drop(conn: psycopg.Connection, sources: list[Source]) -> None:
    """Drop what these sources define, last defined first, so dependents go before what they use."""
    objects = []
    for source in sources:
        for kind, schema, name in source.objects:
            objects.append((kind, schema, name))
            if (schema, name) in _RENAMED:
                objects.append((kind, schema, _RENAMED[schema, name]))  # dropped just before the new name
    for kind, schema, name in reversed(objects):
        if kind in ("FUNCTION", "PROCEDURE"):
            signatures = conn.execute(
                "SELECT format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), "
                "p.prokind FROM pg_proc AS p "
                "JOIN pg_namespace AS n ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = %s",
                (schema, name),
            ).fetchall()
            for signature, prokind in signatures:
                # The signature is the catalog's own rendering, identifiers quoted by it.
                word = "PROCEDURE" if prokind == "p" else "FUNCTION"
                conn.execute(sql.SQL(f"DROP {word} {signature}"))
            continue
        relkind = conn.execute(
            "SELECT c.relkind FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (schema, name),
        ).fetchone()
        if relkind is None:
            continue
        if relkind[0] == "r" and kind == "TABLE":
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, name)))
            continue
        if relkind[0] not in ("v", "m"):
            raise MigrationError(
                f"{schema}.{name} is a table, but a file in sql/post/ defines it as a {kind.lower()}"
            )
        word = "MATERIALIZED VIEW" if relkind[0] == "m" else "VIEW"
        conn.execute(sql.SQL(f"DROP {word} {{}}").format(sql.Identifier(schema, name)))


def _reason(error: psycopg.Error) -> str:
    detail = error.diag.message_detail
    return f"{error.diag.message_primary or error}" + (f" ({detail})" if detail else "")


def _run(conn: psycopg.Connection, label: str, text: str) -> None:
    try:
        with conn.transaction():  # a savepoint: the error names the file, then all rolls back
            conn.execute(text)
    except psycopg.Error as error:
        raise MigrationError(f"{label} failed: {_reason(error)}; nothing was applied.") from error


def migrate(url: str, directory: Path = MIGRATIONS_DIR, sources_dir: Path | None = None) -> list[str]:
    """Apply pending migrations, then stale sources; returns what ran (empty when up to date)."""
    migrations = discover(directory)
    sources = discover_sources(sources_dir if sources_dir is not None else directory / "post")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            with conn.transaction():
                # Skip the DDL when the bookkeeping exists: most calls have nothing to do.
                present = _scalar(
                    conn,
                    "SELECT to_regclass('streetaudit.schema_migration') IS NOT NULL "
                    "AND to_regclass('streetaudit.schema_source') IS NOT NULL",
                )
                if not present:
                    conn.execute(_BOOKKEEPING)
                adopt_files_before_sources(conn, migrations)
                todo = pending(conn, migrations)
                for migration in todo:
                    _run(conn, migration.name, migration.sql)
                    conn.execute(
                        "INSERT INTO streetaudit.schema_migration (name, checksum) VALUES (%s, %s)",
                        (migration.name, migration.checksum),
                    )
                rerun = stale(conn, sources)
                if rerun:
                    try:
                        with conn.transaction():
                            _drop(conn, rerun)
                    except psycopg.Error as error:
                        raise MigrationError(
                            f"cannot re-create the objects of sql/post/{rerun[0].name} and after: {_reason(error)}. "
                            "Move the dependent object into sql/post/; nothing was applied."
                        ) from error
                for source in rerun:
                    _run(conn, f"post/{source.name}", source.sql)
                    conn.execute(
                        "INSERT INTO streetaudit.schema_source (name, checksum) VALUES (%s, %s) "
                        "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()",
                        (source.name, source.checksum),
                    )
                conn.execute(
                    "DELETE FROM streetaudit.schema_source WHERE NOT name = ANY (%s)",
                    ([s.name for s in sources],),
                )
            return [m.name for m in todo] + [f"post/{s.name}" for s in rerun]
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
