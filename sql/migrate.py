"""Apply the numbered `sql/NNN_name.sql` files in order, once each.

Each file runs in its own transaction and is recorded with a checksum. A file that
was applied and later edited is refused before anything runs: silently diverging
schemas are worse than a loud stop.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from streetaudit.sql.errors import MigrationError

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
"""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    files = sorted(p for p in directory.glob("*.sql") if _NAME.match(p.name))
    numbers = [p.name[:3] for p in files]
    duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicated:
        raise MigrationError(f"two migration files share the number(s) {', '.join(duplicated)}")
    return [Migration(p.name, p.read_text()) for p in files]


def applied(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT name, checksum FROM streetaudit.schema_migration").fetchall()
    return dict(rows)


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
            + ". Restore them and add a new numbered file for the change; nothing was applied."
        )
    missing = sorted(set(done) - set(by_name))
    if missing:
        raise MigrationError(
            f"the database has migration(s) this code does not know: {', '.join(missing)}; "
            "is this an older streetaudit? Nothing was applied."
        )
    return [m for m in migrations if m.name not in done]


def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    migrations = discover(directory)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            # Skip the DDL when the bookkeeping table exists: most calls have nothing to do.
            present = conn.execute(
                "SELECT to_regclass('streetaudit.schema_migration') IS NOT NULL"
            ).fetchone()[0]
            if not present:
                conn.execute(_BOOKKEEPING)
            todo = pending(conn, migrations)
            for migration in todo:
                try:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            "INSERT INTO streetaudit.schema_migration (name, checksum) VALUES (%s, %s)",
                            (migration.name, migration.checksum),
                        )
                except psycopg.Error as error:
                    raise MigrationError(f"{migration.name} failed: {error}") from error
            return [m.name for m in todo]
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
