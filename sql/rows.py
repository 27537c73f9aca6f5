"""Rows a statement always returns: INSERT … RETURNING, an aggregate, EXISTS.

psycopg types `fetchone()` as "a row or None"; for these statements None would be a bug
in the statement, so it is raised as one here instead of as a TypeError further on.
"""

from __future__ import annotations

from typing import Any

from psycopg import Cursor


def one(cursor: Cursor[Any]) -> Any:
    """The single row of `cursor` (a tuple, or what the cursor's row factory makes)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return row


def scalar(cursor: Cursor[Any]) -> Any:
    """The first column of the single row of `cursor`."""
    return one(cursor)[0]
