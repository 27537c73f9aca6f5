"""/rate: the raters' page and its endpoints; /stats/ratings: the ratings for readers.

Every /rate endpoint takes the rater's token as `Authorization: Bearer …` and does its
work through one rating_api function on the raters' own pool, whose connections act as
streetaudit_rater: the token is checked in the database, on every call. Unknown tokens
get 401, revoked ones 403. Images are streamed only after rating_api.image_uri accepted
the token, from the URI it returned (a local path or an fsspec URL).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any, Literal

import anyio
import fsspec
import psycopg
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from streetaudit.api.errors import BadRequest, NotFound
from streetaudit.api.map import STATIC_DIR
from streetaudit.api.rating_models import ChoiceResult, Pair, RatingStatusOut, Session, Undone
from streetaudit.api.rating_settings import RatingApiSettings
from streetaudit.api.stats import _answer, _fetch, _row_limit, _table

router = APIRouter(tags=["rating"])

# SQLSTATEs raised by the rating functions (sql/060_ratings.sql), as HTTP statuses.
# SAU04 (an image outside the campaign) is raised by the /label functions (sql/post/070_label.sql).
_STATUS = {"SAU01": 401, "SAU03": 403, "SAU04": 404, "SAU09": 409, "SAU22": 400, "23505": 409}
_MEDIA = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
_CLIENT_LIMIT = 2000
_RATINGS_COLUMNS = [
    "image_id",
    "point_id",
    "area_name",
    "elo",
    "bt",
    "bt_se",
    "n_comparisons",
    "wins",
    "elo_online",
    "computed_at",
]
_RATINGS_SQL = (
    f"SELECT {', '.join(_RATINGS_COLUMNS)}, ST_X(geom) AS lon, ST_Y(geom) AS lat "
    "FROM api.image_ratings ORDER BY elo DESC, image_id LIMIT %(limit)s"
)


class RaterDatabase:
    """The raters' pool, logged in as streetaudit_rater: it can call the rating functions and nothing else."""

    def __init__(self, settings: RatingApiSettings | None = None):
        self.settings = settings or RatingApiSettings()
        self.pool = (
            AsyncConnectionPool(
                self.settings.database_url,
                min_size=self.settings.pool_min,
                max_size=self.settings.pool_max,
                open=False,
                timeout=5,
                kwargs={"autocommit": True, "connect_timeout": 3},
            )
            if self.settings.database_url
            else None
        )

    async def open(self) -> None:
        if self.pool is not None:
            await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def call(self, function: str, *args) -> Any:
        """One rating_api function; its token errors become 401/403, bad choices 400/409."""
        statement = sql.SQL("SELECT {}({})").format(
            sql.Identifier("rating_api", function), sql.SQL(", ").join([sql.Placeholder()] * len(args))
        )
        if self.pool is None:
            raise HTTPException(
                503, "the rating endpoints are not configured (STREETAUDIT_API_RATER_DATABASE_URL is unset)"
            )
        try:
            async with self.pool.connection() as conn:
                row = await (await conn.execute(statement, args, prepare=True)).fetchone()
        except psycopg.Error as error:
            status = _STATUS.get(error.sqlstate or "")
            if status is None:
                raise
            detail = error.diag.message_primary or "refused"
            if error.sqlstate == "23505":
                detail = "this rater has judged that pair already"
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            raise HTTPException(status, detail, headers=headers) from None
        assert row is not None  # SELECT f(...) always answers one row
        return row[0]


def bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "send the rater's token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def _raters(request: Request) -> RaterDatabase:
    return request.app.state.rater_db


def _private(payload: object) -> JSONResponse:
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})


class Choice(BaseModel):
    left: int
    right: int
    choice: Literal["left", "right", "skip"]
    client: dict | None = Field(None, description="What the page reports: viewport, ms to answer")


@router.get("/rate", summary="The raters' page (open it with the personal link)", response_class=FileResponse)
async def rate_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "rate.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


@router.get("/rate/session", summary="The rater, their progress and the campaign", response_model=Session)
async def session(request: Request, authorization: str | None = Header(None)) -> JSONResponse:
    return _private(await _raters(request).call("session", bearer(authorization)))


@router.get("/rate/pair", summary="The next pair to judge", response_model=Pair)
async def next_pair(request: Request, authorization: str | None = Header(None)) -> JSONResponse:
    return _private(await _raters(request).call("next_pair", bearer(authorization)))


@router.post(
    "/rate/choice",
    summary="Record a choice (left, right or skip) for an offered pair",
    response_model=ChoiceResult,
)
async def choose(request: Request, body: Choice, authorization: str | None = Header(None)) -> JSONResponse:
    token = bearer(authorization)
    client = dict(body.client or {})
    client["user_agent"] = request.headers.get("user-agent", "")[:300]
    text = json.dumps(client)
    if len(text) > _CLIENT_LIMIT:
        raise BadRequest(f"client must be at most {_CLIENT_LIMIT} characters of JSON, got {len(text)}")
    result = await _raters(request).call("submit_choice", token, body.left, body.right, body.choice, text)
    return _private(result)


@router.post(
    "/rate/undo",
    summary="Undo the rater's last choice; returns its pair to show again",
    response_model=Undone,
)
async def undo(request: Request, authorization: str | None = Header(None)) -> JSONResponse:
    return _private(await _raters(request).call("undo_last", bearer(authorization)))


@router.get("/rate/image/{image_id}", summary="An image of the campaign (valid token only)")
async def image(request: Request, image_id: int, authorization: str | None = Header(None)) -> Response:
    uri = await _raters(request).call("image_uri", bearer(authorization), image_id)
    if uri is None:
        raise NotFound(f"image {image_id} is not in the rating campaign")
    return await image_response(image_id, uri)


async def read_image(image_id: int, uri: str) -> bytes:
    """The stored file of an image whose URI a token-checked function returned (path or fsspec URL)."""

    def read() -> bytes:
        with fsspec.open(uri, "rb") as handle:
            return handle.read()

    try:
        return await anyio.to_thread.run_sync(read)
    except FileNotFoundError:
        raise NotFound(f"image {image_id}: its file is missing from the image store") from None


async def image_response(image_id: int, uri: str) -> Response:
    """The image's bytes, cached by the rater's browser only."""
    data = await read_image(image_id, uri)
    media = _MEDIA.get(PurePosixPath(uri).suffix.lower(), "application/octet-stream")
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=86400"})


@router.get(
    "/stats/ratings",
    summary="Pooled ratings per image (api.image_ratings)",
    tags=["statistics"],
    responses=_table("api.image_ratings", {"image_id": 12, "elo": 1532.0, "bt": 0.41, "n_comparisons": 9}),
)
async def ratings(
    request: Request,
    limit: int = Query(1000, ge=1, description="Most rows returned, best rated first"),
    format: str | None = Query(None, description="json or csv"),
) -> Response:
    return await _answer(
        request, format, "image_ratings", _RATINGS_SQL, {"limit": _row_limit(request, limit)}
    )


@router.get(
    "/stats/ratings/status",
    summary="Latest campaign status (api.rating_status)",
    tags=["statistics"],
    response_model=RatingStatusOut,
)
async def ratings_status(request: Request) -> JSONResponse:
    rows, _ = await _fetch(request, "SELECT computed_at, status FROM api.rating_status")
    if not rows:
        raise NotFound("no rating status yet: run `streetaudit ratings status` or the `ratings` flow")
    return JSONResponse({"computed_at": rows[0]["computed_at"].isoformat(), **rows[0]["status"]})
