"""Find the database a command should use, start it when it is ours, and connect."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streetaudit.sql.cluster import LocalCluster
from streetaudit.sql.errors import DatabaseSetupError
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


def ready_login_url(role: str, settings: DatabaseSettings | None = None) -> str:
    """The private cluster's URL for login role `role`, after making its schema current.

    Only the private cluster keeps the login roles' passwords; with STREETAUDIT_DATABASE_URL
    set, the caller must be given the role's URL (STREETAUDIT_API_DATABASE_URL for the API).
    """
    settings = settings or DatabaseSettings()
    if settings.database_url:
        raise DatabaseSetupError(
            f"no URL for the login role {role}: STREETAUDIT_DATABASE_URL names your own server, "
            "whose role passwords streetaudit does not know"
        )
    ready_database(settings)
    return local_cluster(settings).login_url(role)


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
