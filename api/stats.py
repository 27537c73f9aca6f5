"""/stats/...: the statistics views as JSON or CSV (`?format=csv` or `Accept: text/csv`)."""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from psycopg import sql
from psycopg.rows import dict_row

from streetaudit.api.dependencies import BIGINT, get_bbox
from streetaudit.api.errors import BadRequest

router = APIRouter(prefix="/stats", tags=["statistics"])


def _table(view: str, example: dict) -> dict:
    """OpenAPI for a statistics table: JSON rows (one object per row, a key per column of
    `view` but the geometry; NaN and infinities as null) or the same as CSV."""
    row = {
        "type": "object",
        "description": f"One row of {view}; the columns are the view's (see README, Statistics).",
        "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
        "example": example,
    }
    return {
        200: {
            "description": f"The rows of {view}",
            "content": {"application/json": {"schema": {"type": "array", "items": row}}, "text/csv": {}},
        }
    }


# The views own the columns (one per element and statistic; the element list lives in the
# SQL, which the api may not take from models): every column but the geometry is served, in
# the view's order, read from the catalog. Nothing from the request names a column.
_COLUMNS_SQL = """SELECT attname FROM pg_attribute
    WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'geom'
    ORDER BY attnum"""
_AREAS_SQL = "SELECT {columns} FROM api.area_stats ORDER BY area_id NULLS LAST"
_COMPARISON_SQL = "SELECT * FROM api.area_comparison"
_STREETS_SQL = (
    "SELECT {columns} FROM api.street_stats "
    "WHERE (%(bbox)s::float8[] IS NULL OR geom && ST_MakeEnvelope("
    "(%(bbox)s::float8[])[1], (%(bbox)s::float8[])[2], (%(bbox)s::float8[])[3], (%(bbox)s::float8[])[4], 4326)) "
    "ORDER BY street_id LIMIT %(limit)s"
)
_ROADS_SQL = (
    "SELECT {columns} FROM api.road_stats "
    "WHERE (%(bbox)s::float8[] IS NULL OR geom && ST_MakeEnvelope("
    "(%(bbox)s::float8[])[1], (%(bbox)s::float8[])[2], (%(bbox)s::float8[])[3], (%(bbox)s::float8[])[4], 4326)) "
    "ORDER BY road_id LIMIT %(limit)s"
)


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise BadRequest(f"format must be json or csv, got {fmt[:20]!r}")
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _plain(value, as_text: bool = False):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list) and as_text:  # CSV has no lists: a street's road_ids as "3,7,12"
        return ",".join(map(str, value))
    return value


def _respond(rows: list[dict], columns: list[str], as_csv: bool, name: str) -> Response:
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else _plain(row[c], as_text=True) for c in columns])
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return JSONResponse([{c: _plain(row[c]) for c in columns} for row in rows])


async def _fetch(
    request: Request, query: str, params: dict | None = None, view: str | None = None
) -> tuple[list[dict], list[str]]:
    """Runs `query`; with `view`, its `{columns}` become that view's columns but the geometry."""
    async with request.app.state.db.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        statement: str | sql.Composed = query
        if view is not None:
            await cur.execute(_COLUMNS_SQL, (view,))
            names = [row["attname"] for row in await cur.fetchall()]
            statement = sql.SQL(query).format(columns=sql.SQL(", ").join(map(sql.Identifier, names)))
        await cur.execute(statement, params)
        rows = await cur.fetchall()
        columns = [d.name for d in cur.description]
    return rows, columns


async def _answer(
    request: Request,
    fmt: str | None,
    name: str,
    query: str,
    params: dict | None = None,
    view: str | None = None,
) -> Response:
    """One table route: the format checked before the query runs, then JSON or CSV named `name`."""
    as_csv = _wants_csv(request, fmt)
    rows, columns = await _fetch(request, query, params, view)
    return _respond(rows, columns, as_csv, name)


def _row_limit(request: Request, limit: int) -> int:
    cap = request.app.state.settings.stats_row_limit
    if limit > cap:
        raise BadRequest(f"limit must be at most {cap}, got {limit}")
    return limit


async def _heat_filter(
    model: int | None = Query(None, ge=0, le=BIGINT, description="Detector (model id); default all"),
    method: str | None = Query(None, description="CAM method, e.g. gradcam; default all"),
    target: str | None = Query(None, description="Heat-map target, e.g. boxes; default all"),
) -> dict:
    return {"model": model, "method": method, "target": target}


@router.get(
    "/areas",
    summary="Per heritage area and the rest of the city (api.area_stats)",
    responses=_table("api.area_stats", {"area_id": 1, "name": "Old town", "n_points": 40, "sky_mean": 0.21}),
)
async def areas(request: Request, format: str | None = Query(None, description="json or csv")) -> Response:
    return await _answer(request, format, "area_stats", _AREAS_SQL, view="api.area_stats")


@router.get(
    "/comparison",
    summary="Core areas vs the rest (api.area_comparison)",
    responses=_table(
        "api.area_comparison", {"area_name": "all core areas", "element": "sky", "welch_p": 0.03}
    ),
)
async def comparison(
    request: Request, format: str | None = Query(None, description="json or csv")
) -> Response:
    return await _answer(request, format, "area_comparison", _COMPARISON_SQL)


# /stats/segments was this route's name before the road/segmentation rename; kept as an alias
# (hidden from /docs) so existing clients keep working.
@router.get(
    "/roads",
    summary="Per road (api.road_stats), optionally within a bbox",
    responses=_table("api.road_stats", {"road_id": 7, "name": "Katu", "n_points": 5, "sky_mean": 0.2}),
)
@router.get("/segments", include_in_schema=False)
async def roads(
    request: Request,
    box: Annotated[list[float] | None, Depends(get_bbox)],
    limit: int = Query(1000, ge=1, description="Most rows returned"),
    format: str | None = Query(None, description="json or csv"),
) -> Response:
    params = {"bbox": box, "limit": _row_limit(request, limit)}
    return await _answer(request, format, "road_stats", _ROADS_SQL, params, view="api.road_stats")


@router.get(
    "/streets",
    summary="Per street (api.street_stats, after `streetaudit streets build`), optionally within a bbox",
    responses=_table(
        "api.street_stats",
        {"street_id": 3, "name": "Katu", "n_points": 12, "sky_mean": 0.2, "road_ids": [7, 9]},
    ),
)
async def streets(
    request: Request,
    box: Annotated[list[float] | None, Depends(get_bbox)],
    limit: int = Query(1000, ge=1, description="Most rows returned"),
    format: str | None = Query(None, description="json or csv"),
) -> Response:
    params = {"bbox": box, "limit": _row_limit(request, limit)}
    return await _answer(request, format, "street_stats", _STREETS_SQL, params, view="api.street_stats")


# Heat maps (`streetaudit explain`): one set per detector, CAM method and target, so both
# routes filter by them; the values are bound parameters.
_HEAT_FILTER = (
    " WHERE (%(model)s::bigint IS NULL OR model_id = %(model)s)"
    " AND (%(method)s::text IS NULL OR method = %(method)s)"
    " AND (%(target)s::text IS NULL OR target = %(target)s)"
)
_HEAT_STATS_SQL = (
    "SELECT * FROM api.heat_stats" + _HEAT_FILTER + " ORDER BY model_id, method, target, area_id NULLS LAST"
)
_HEAT_COMPARISON_SQL = "SELECT * FROM api.heat_comparison" + _HEAT_FILTER


@router.get(
    "/heat",
    summary="Heat-map statistics per heritage area and the rest of the city (api.heat_stats)",
    responses=_table(
        "api.heat_stats",
        {"model_id": 3, "method": "gradcam", "area_name": "Old town", "upper_third_mean": 0.4},
    ),
)
async def heat(
    request: Request,
    params: Annotated[dict, Depends(_heat_filter)],
    format: str | None = Query(None, description="json or csv"),
) -> Response:
    return await _answer(request, format, "heat_stats", _HEAT_STATS_SQL, params)


@router.get(
    "/heat/comparison",
    summary="Heat-map statistics, core areas vs the rest (api.heat_comparison)",
    responses=_table(
        "api.heat_comparison",
        {
            "model_id": 3,
            "method": "gradcam",
            "area_name": "all core areas",
            "statistic": "upper_third",
            "welch_p": 0.03,
        },
    ),
)
async def heat_comparison(
    request: Request,
    params: Annotated[dict, Depends(_heat_filter)],
    format: str | None = Query(None, description="json or csv"),
) -> Response:
    return await _answer(request, format, "heat_comparison", _HEAT_COMPARISON_SQL, params)
