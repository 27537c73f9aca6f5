"""The connection pool and the data version that caches key on."""

from __future__ import annotations

import time
from dataclasses import dataclass

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from streetaudit.api.settings import ApiSettings


@dataclass
class DataVersion:
    version: int
    model_id: int | None
    model_name: str | None


class Database:
    """A psycopg pool whose connections act as the reader role, plus a short-lived version cache."""

    def __init__(self, url: str, settings: ApiSettings):
        self.settings = settings
        self.pool = AsyncConnectionPool(
            url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            open=False,
            configure=self._configure,
            kwargs={"autocommit": True},
        )
        self._version: DataVersion | None = None
        self._version_at = 0.0

    async def _configure(self, conn: AsyncConnection) -> None:
        if self.settings.role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.settings.role)))

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
            self.remember_version(DataVersion(*row) if row else DataVersion(0, None, None))
        return self._version

    def remember_version(self, version: DataVersion) -> None:
        self._version, self._version_at = version, time.monotonic()

    def forget_version(self) -> None:
        self._version = None
