"""The connection pool, the URL it connects with, and the data version that caches key on."""

from __future__ import annotations

import time
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from streetaudit.api.role_check import READER_ROLE
from streetaudit.api.settings import ApiSettings
from streetaudit.sql.connect import ready_login_url
from streetaudit.sql.settings import DatabaseSettings


def api_database_url(settings: ApiSettings) -> str:
    """STREETAUDIT_API_DATABASE_URL, else STREETAUDIT_DATABASE_URL, else the private cluster's reader.

    The first two are checked at start (role_check): an owner's URL is refused, not used.
    """
    if settings.database_url:
        return settings.database_url
    database = DatabaseSettings()
    return database.database_url or ready_login_url(READER_ROLE, database)


@dataclass
class DataVersion:
    version: int
    model_id: int | None
    model_name: str | None


class Database:
    """A psycopg pool of the login role's connections, plus a short-lived version cache.

    Every wait is bounded: a connection is checked when handed out (a restarted server
    leaves dead ones behind), a request waits at most pool_timeout for one, and a statement
    runs at most statement_timeout_ms; a lost database is then a 503 within about a second.
    """

    def __init__(self, url: str, settings: ApiSettings):
        self.settings = settings
        self.pool = AsyncConnectionPool(
            url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            open=False,
            timeout=settings.pool_timeout,
            check=AsyncConnectionPool.check_connection,
            kwargs={
                "autocommit": True,
                "connect_timeout": settings.connect_timeout,
                "options": f"-c statement_timeout={settings.statement_timeout_ms}",
                "application_name": "streetaudit-api",
            },
        )
        self._version: DataVersion | None = None
        self._version_at = 0.0

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    async def version(self) -> DataVersion:
        now = time.monotonic()
        if self._version is None or now - self._version_at >= self.settings.version_ttl:
            async with self.pool.connection() as conn:
                row = await (
                    await conn.execute("SELECT version, model_id, model_name FROM api.data_version")
                ).fetchone()
            version = DataVersion(*row) if row else DataVersion(0, None, None)
            self.remember_version(version)
            return version
        return self._version

    def remember_version(self, version: DataVersion) -> None:
        self._version, self._version_at = version, time.monotonic()

    def forget_version(self) -> None:
        self._version = None
