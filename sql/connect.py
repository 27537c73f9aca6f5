"""Find the database a command should use, start it when it is ours, and connect."""

from __future__ import annotations

import psycopg

from streetaudit.sql.cluster import LocalCluster
from streetaudit.sql.migrate import migrate
from streetaudit.sql.settings import DatabaseSettings


def local_cluster(settings: DatabaseSettings | None = None) -> LocalCluster:
    settings = settings or DatabaseSettings()
    return LocalCluster(settings.data_dir, settings.pg_bindir)


def database_url(settings: DatabaseSettings | None = None, *, start: bool = True) -> str:
    """`STREETAUDIT_DATABASE_URL` when set; otherwise the private cluster, started on demand."""
    settings = settings or DatabaseSettings()
    if settings.database_url:
        return settings.database_url
    cluster = local_cluster(settings)
    return cluster.up() if start else cluster.url()


def ready_database(settings: DatabaseSettings | None = None) -> str:
    """A URL whose schema is current: every data command calls this first."""
    url = database_url(settings)
    migrate(url)
    return url


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, **kwargs)
