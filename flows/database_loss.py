"""Noticing that the database went away during a long stage, and saying so in one line.

`collect` and `segment` hold connections for minutes or hours. When the server stops
(`streetaudit db down`, a restart, a crash) psycopg raises OperationalError in whichever
task touches the connection next; when the network drops without a reset, only TCP
keepalives notice. Every connection these stages open uses `CONNECT_OPTIONS`, so a dead
peer is found within seconds, and the error becomes `DatabaseLost`, which the commands print
as one line with exit status 3 (not 2: nothing the user typed was wrong, and the rerun after
`db up` resumes; rows already written are kept and the unique keys prevent duplicates).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from streetaudit.sql.errors import StreetauditError

EXIT_DATABASE_LOST = 3

# libpq keywords: give up connecting after 10 s; probe an idle connection after 5 s, every
# 2 s, 3 times; drop a connection whose sent data stays unacknowledged for 15 s.
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}

# SQLSTATEs that mean the server is going or gone, rather than that a statement was wrong.
_SHUTDOWN_STATES = {"57P01", "57P02", "57P03"}  # admin shutdown, crash shutdown, cannot connect now


class DatabaseLost(StreetauditError):
    """The connection to the database failed mid-stage; a rerun resumes where this one stopped."""

    def __init__(self, stage: str, error: BaseException):
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        super().__init__(
            f"{stage} stopped: no connection to the database ({reason}). Rows written so far are "
            "kept; once the database is up again (streetaudit db up) rerun the same command to resume"
        )


def is_connection_loss(error: BaseException) -> bool:
    """True for a broken or refused connection; False for a statement the server rejected."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    return state is None or state.startswith("08") or state in _SHUTDOWN_STATES


@contextmanager
def reporting_database_loss(stage: str) -> Iterator[None]:
    """Turn a lost connection raised anywhere inside into `DatabaseLost` (no traceback)."""
    try:
        yield
    except psycopg.OperationalError as error:
        if is_connection_loss(error):
            raise DatabaseLost(stage, error) from None
        raise
