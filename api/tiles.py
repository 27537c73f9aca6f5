"""pg_tileserv-compatible tile endpoints: /index.json, /{layer}.json, TileJSON and XYZ tiles.

Caching: a tile's ETag is its layer, address, properties and the data version, which
only `streetaudit stats refresh` changes; so If-None-Match is answered without running
the tile function, and tile URLs that carry `?v=<current version>` (as our TileJSON
writes them) may be cached for a day.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg import sql
from pydantic import BaseModel, Field

from streetaudit.api.catalog import Layer, load_layers
from streetaudit.api.dependencies import Tile, get_layer, get_tile
from streetaudit.api.errors import BadRequest

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
MAX_TILE_BYTES = 500_000  # the budget every tile function keeps (sql/post/031_tiles.sql)

router = APIRouter(tags=["tiles"])
# The tile route alone, included first (api/factory.py): a map asks for dozens of tiles per
# view, and every route tried before the match costs each of them. Four path segments
# ending in .pbf/.mvt shadow none of the fixed paths.
tile_router = APIRouter(tags=["tiles"])


class LayerSummary(BaseModel):
    """One entry of /index.json, as pg_tileserv writes it."""

    type: str
    id: str
    schema_: str = Field(alias="schema")
    name: str
    description: str | None
    detailurl: str


class Property(BaseModel):
    name: str
    type: str


class LayerDetail(BaseModel):
    """/{layer}.json, as pg_tileserv writes it."""

    type: str
    id: str
    schema_: str = Field(alias="schema")
    name: str
    description: str | None
    arguments: str  # the function's SQL argument list, as pg_tileserv reports it
    properties: list[Property]
    minzoom: int
    maxzoom: int
    tileurl: str
    tilejson: str
    bounds: list[float]  # west, south, east, north of the layer's features (degrees)
    center: list[float]  # lon, lat (as pg_tileserv writes it for table layers)


class VectorLayer(BaseModel):
    id: str
    description: str | None
    minzoom: int
    maxzoom: int
    fields: dict[str, str]


class TileJson(BaseModel):
    """TileJSON 3.0.0 (https://github.com/mapbox/tilejson-spec/tree/master/3.0.0)."""

    tilejson: str
    name: str
    description: str | None
    version: str
    scheme: str
    tiles: list[str]
    minzoom: int
    maxzoom: int
    bounds: list[float]
    center: list[float]
    vector_layers: list[VectorLayer]


def parse_properties(layer: Layer, value: str | None) -> str | None:
    """The comma-separated attribute list, checked against the layer's; None keeps all."""
    if value is None:
        return None
    names = list(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    unknown = [n for n in names if n not in layer.properties]
    if unknown:
        raise BadRequest(
            f"unknown properties for {layer.id}: {', '.join(repr(u[:60]) for u in unknown[:5])}; "
            f"available: {', '.join(layer.properties)}"
        )
    if not layer.takes_properties:
        raise BadRequest(f"{layer.id} does not take properties=")
    return ",".join(names)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.api_route("/index.json", methods=["GET", "HEAD"], summary="Tile layers (pg_tileserv format)")
async def index(request: Request) -> dict[str, LayerSummary]:
    async with request.app.state.db.pool.connection() as conn:
        request.app.state.layers = layers = await load_layers(conn)
    base = base_url(request)
    return {
        layer.id: LayerSummary.model_validate(
            {
                "type": "function",
                "id": layer.id,
                "schema": layer.schema,
                "name": layer.name,
                "description": layer.description,
                "detailurl": f"{base}/{layer.id}.json",
            }
        )
        for layer in layers.values()
    }


@router.api_route("/{layer_id}.json", methods=["GET", "HEAD"], summary="One layer (pg_tileserv format)")
async def layer_detail(request: Request, layer: Annotated[Layer, Depends(get_layer)]) -> LayerDetail:
    base = base_url(request)
    extent = await request.app.state.extent(layer.id)
    return LayerDetail.model_validate(
        {
            "type": "function",
            "id": layer.id,
            "schema": layer.schema,
            "name": layer.name,
            "description": layer.description,
            "arguments": layer.arguments,
            "properties": [{"name": n, "type": t} for n, t in layer.fields.items()],
            "minzoom": layer.minzoom,
            "maxzoom": layer.maxzoom,
            "tileurl": f"{base}/{layer.id}/{{z}}/{{x}}/{{y}}.pbf",
            "tilejson": f"{base}/{layer.id}/tilejson.json",
            "bounds": extent.bounds,
            "center": extent.center(layer.minzoom, layer.maxzoom)[:2],
        }
    )


@router.api_route("/{layer_id}/tilejson.json", methods=["GET", "HEAD"], summary="TileJSON 3.0.0 for MapLibre")
async def tilejson(
    request: Request, layer: Annotated[Layer, Depends(get_layer)], response: Response
) -> TileJson:
    version = await request.app.state.db.version()
    extent = await request.app.state.extent(layer.id)
    response.headers["Cache-Control"] = f"public, max-age={request.app.state.settings.max_age}"
    return TileJson.model_validate(
        {
            "tilejson": "3.0.0",
            "name": layer.id,
            "description": layer.description,
            "version": "1.0.0",
            "scheme": "xyz",
            "tiles": [f"{base_url(request)}/{layer.id}/{{z}}/{{x}}/{{y}}.pbf?v={version.version}"],
            "minzoom": layer.minzoom,
            "maxzoom": layer.maxzoom,
            "bounds": extent.bounds,
            "center": extent.center(layer.minzoom, layer.maxzoom),
            "vector_layers": [
                {
                    "id": layer.id,
                    "description": layer.description,
                    "minzoom": layer.minzoom,
                    "maxzoom": layer.maxzoom,
                    "fields": layer.fields,
                }
            ],
        }
    )


def tile_etag(
    layer: Layer, z: int, x: int, y: int, properties: str | None, version: int, max_bytes: int | None = None
) -> str:
    # repr: properties="" (no attributes) and None (all of them) are different tiles.
    key = f"{layer.id}/{z}/{x}/{y}?{properties!r}&{max_bytes!r}#{version}"
    return f'W/"{version}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


def parse_max_bytes(layer: Layer, value: str | None) -> int | None:
    """pg_tileserv passes `max_bytes=` to the function; we check it first, so a value the
    function would silently cap (it can only lower the 500 KB budget) is a 400 instead."""
    if value is None:
        return None
    if not layer.takes_max_bytes:
        raise BadRequest(f"{layer.id} does not take max_bytes=")
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_TILE_BYTES:
        raise BadRequest(f"max_bytes must be an integer from 1 to {MAX_TILE_BYTES}, got {value[:40]!r}")
    return int(value)


@tile_router.api_route(
    "/{layer_id}/{z}/{x}/{y}.pbf",
    methods=["GET", "HEAD"],
    summary="A Mapbox vector tile",
    response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 304: {"description": "Not modified"}},
)
@tile_router.api_route("/{layer_id}/{z}/{x}/{y}.mvt", methods=["GET", "HEAD"], include_in_schema=False)
# The same tile as an ArcGIS VectorTileServer addresses it (api/esri.py), row before column.
@tile_router.api_route(
    "/{layer_id}/VectorTileServer/tile/{z}/{y}/{x}.pbf", methods=["GET", "HEAD"], include_in_schema=False
)
async def tile(
    request: Request,
    layer: Annotated[Layer, Depends(get_layer)],
    address: Annotated[Tile, Depends(get_tile)],
    properties: str | None = None,
    max_bytes: Annotated[
        str | None,
        Query(
            description=f"lower the tile's byte budget (1 to {MAX_TILE_BYTES}): fewer, largest-first features"
        ),
    ] = None,
    v: str | None = None,
) -> Response:
    zi, xi, yi = address
    props = parse_properties(layer, properties)
    budget = parse_max_bytes(layer, max_bytes)
    status, headers, data = await render_tile(
        request.app.state, layer, zi, xi, yi, props, budget, v, request.headers.get("if-none-match")
    )
    if status == 304:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=MVT_MEDIA_TYPE, headers=headers)


async def render_tile(
    state,
    layer: Layer,
    z: int,
    x: int,
    y: int,
    props: str | None,
    budget: int | None,
    v: str | None,
    if_none_match: str | None,
) -> tuple[int, dict[str, str], bytes]:
    """A checked tile request's status (200 or 304), headers and body; `state` is the app's.

    Both the tile route and api/tile_fast_path.py answer through this, so they cannot differ.
    """
    db = state.db
    settings = state.settings
    known = await db.version()
    etag = tile_etag(layer, z, x, y, props, known.version, budget)
    headers = {"ETag": etag, "Cache-Control": _cache_control(settings, v, known.version)}
    if _matches(if_none_match, etag):
        return 304, headers, b""
    cache = state.tile_cache
    data = cache.get(etag) if cache is not None else None
    if data is None:
        version, data = await _query_tile(db, layer, z, x, y, props, budget)
        if version != known.version:
            # Refreshed since we last looked: label the tile with the version it came from.
            db.forget_version()
            etag = tile_etag(layer, z, x, y, props, version, budget)
            headers = {"ETag": etag, "Cache-Control": _cache_control(settings, v, version)}
        if cache is not None:
            cache.put(etag, data)
    return 200, headers, data


async def _query_tile(
    db, layer: Layer, z: int, x: int, y: int, props: str | None, budget: int | None
) -> tuple[int, bytes]:
    """The tile and the data version it was made from, in one round trip. Binary results:
    a tile comes back as its bytes, not as hex text twice its size to be decoded."""
    extra = (", %s" if layer.takes_properties else "") + (", max_bytes => %s" if budget is not None else "")
    call = sql.SQL("SELECT d.version, {}(%s, %s, %s{}) FROM api.data_version AS d").format(
        sql.Identifier(layer.schema, layer.name), sql.SQL(extra)
    )
    params: tuple = (z, x, y, props) if layer.takes_properties else (z, x, y)
    if budget is not None:
        params += (budget,)
    async with db.pool.connection() as conn:
        version, data = await (await conn.execute(call, params, prepare=True, binary=True)).fetchone()
    return version, bytes(data or b"")


def _cache_control(settings, v: str | None, version: int) -> str:
    if v is not None and v == str(version):
        return f"public, max-age={settings.versioned_max_age}, immutable"
    return f"public, max-age={settings.max_age}"
