"""Find the database a command should use, start it when it is ours, and connect."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def scratch_database(url: str | None = None) -> Iterator[str]:
    """A migrated database for benchmarks and experiments that may write anything.

    Only an explicitly passed `url` is used; STREETAUDIT_DATABASE_URL is deliberately
    ignored, so a benchmark never truncates the user's real data. Without one, a private
    cluster with fsync off is created in a temporary folder and deleted on exit.
    """
    if url is not None:
        migrate(url)
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="sa-scratch-"))
    cluster = LocalCluster(root, fast_unsafe=True)
    try:
        url = cluster.up()
        migrate(url)
        yield url
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)
