"""Raters of the rating campaign: add (prints a personal link once), list, revoke.

A token is 32 random bytes (URL-safe text); only its SHA-256 is stored, so a copy of the
database does not let anyone rate in a rater's name. The link carries the token after
`#`, which browsers never send to servers or put in Referer headers; the page sends it as
a bearer token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg

from streetaudit.flows.errors import InputError


def token_hash(token: str) -> str:
    """What streetaudit.rater_for() compares with: hex SHA-256 of the token's UTF-8 bytes."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class NewRater:
    name: str
    token: str
    link: str


@dataclass
class RaterRow:
    name: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool
    comparisons: int
    skipped: int


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InputError(f"rater name must be 1 to 100 characters, got {len(name)}")
    return name


def add_rater(url: str, name: str, base_url: str = "http://127.0.0.1:8000") -> NewRater:
    name = _check_name(name)
    token = secrets.token_urlsafe(32)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """INSERT INTO streetaudit.rater (name, token_hash) VALUES (%s, %s)
               ON CONFLICT (name) DO NOTHING RETURNING id""",
            (name, token_hash(token)),
        ).fetchone()
        if row is None:
            raise InputError(f"rater {name!r} exists already; revoke it or choose another name")
    return NewRater(name, token, f"{base_url.rstrip('/')}/rate#token={token}")


def list_raters(url: str) -> list[RaterRow]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT r.name, r.created_at, r.revoked_at, r.active,
                      count(c.id) FILTER (WHERE c.choice <> 'skip'), count(c.id) FILTER (WHERE c.choice = 'skip')
               FROM streetaudit.rater AS r
               LEFT JOIN streetaudit.comparison AS c ON c.rater_id = r.id AND c.undone_at IS NULL
               GROUP BY r.id ORDER BY r.id"""
        ).fetchall()
    return [RaterRow(*row) for row in rows]


def revoke_rater(url: str, name: str) -> None:
    """The rater's link stops working at once; their choices stay in the record."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "UPDATE streetaudit.rater SET revoked_at = coalesce(revoked_at, now()) WHERE name = %s RETURNING id",
            (name,),
        ).fetchone()
        if row is None:
            raise InputError(f"no rater named {name!r} (see `streetaudit raters list`)")
