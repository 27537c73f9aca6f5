"""Styles from the server: /style.json (MapLibre), /{layer}.qml (QGIS) and /ramps.json.

A client given our tile URLs alone draws every street grey; with these it draws them as
/map does, from the same ramps (api/ramps.py), over ranges read from the data. The
element list comes from the roads layer's attributes (`<element>_mean`), so an element
added in SQL is styled without a change here; request parameters are only ever compared
with that list.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg import sql
from pydantic import BaseModel, Field

from streetaudit.api import ramps
from streetaudit.api.catalog import Layer
from streetaudit.api.dependencies import get_layer
from streetaudit.api.errors import BadRequest

router = APIRouter(tags=["styles"])

ROADS, AREAS, POINTS, RATINGS = "api.roads", "api.areas", "api.points", "api.ratings"
QML_MEDIA_TYPE = "application/xml"
_GEOMETRY = {"point": 0, "line": 1, "polygon": 2}  # QgsWkbTypes::GeometryType


class RampDoc(BaseModel):
    attribute: str
    low: float
    high: float
    stops: list[tuple[float, str]] = Field(description="(value, colour) pairs, linear in between, clamped")


class RampsDoc(BaseModel):
    colours: list[str]
    no_data: str = Field(description="colour of a feature whose attribute is NULL")
    area: str
    background: str
    roads: dict[str, dict[str, RampDoc]] = Field(description="element -> mean/std -> ramp")
    points: dict[str, RampDoc]
    ratings: RampDoc


class VectorSource(BaseModel):
    type: str
    url: str


class StyleDoc(BaseModel):
    """A MapLibre style (https://maplibre.org/maplibre-style-spec/), version 8."""

    version: int
    name: str
    center: list[float]
    zoom: float
    sources: dict[str, VectorSource]
    layers: list[dict] = Field(description="MapLibre style layers")


def elements(layers: dict[str, Layer]) -> list[str]:
    roads = layers.get(ROADS)
    return [p.removesuffix("_mean") for p in roads.properties if p.endswith("_mean")] if roads else []


async def observed_max(request: Request, names: list[str]) -> dict[str, float | None]:
    """Each element's largest value over the areas and the rest (area_stats' `<element>_max`)."""
    async with request.app.state.db.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'api.area_stats'::regclass "
                "AND attnum > 0 AND NOT attisdropped"
            )
        ).fetchall()
        columns = {r[0] for r in rows}
        present = [n for n in names if f"{n}_max" in columns]
        if not present:
            return dict.fromkeys(names)
        query = sql.SQL("SELECT {} FROM api.area_stats").format(
            sql.SQL(", ").join(sql.SQL("max({})").format(sql.Identifier(f"{n}_max")) for n in present)
        )
        values = await (await conn.execute(query)).fetchone()
    found = dict(zip(present, values or (), strict=False))
    return {n: found.get(n) for n in names}


class Choice:
    """`element=` and `statistic=` of a style request, checked against the roads layer."""

    def __init__(
        self,
        request: Request,
        element: str = Query("greenery", description="the element roads and points are coloured by"),
        statistic: str = Query("mean", description="mean or std (roads)"),
    ):
        known = elements(request.app.state.layers)
        if element not in known:
            raise BadRequest(f"element must be one of {', '.join(known) or 'none'}, got {element[:40]!r}")
        if statistic not in ramps.STATISTICS:
            raise BadRequest(f"statistic must be mean or std, got {statistic[:40]!r}")
        self.element, self.statistic = element, statistic


async def ramps_for(request: Request, choice: Choice) -> dict[str, ramps.Ramp]:
    top = (await observed_max(request, [choice.element]))[choice.element]
    return {
        ROADS: ramps.road_ramp(choice.element, choice.statistic, top),
        POINTS: ramps.point_ramp(choice.element, top),
        RATINGS: ramps.elo_ramp(),
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/ramps.json", summary="The colour ramps of /map, /style.json and the QGIS styles")
async def ramps_json(request: Request) -> RampsDoc:
    names = elements(request.app.state.layers)
    tops = await observed_max(request, names)
    doc = {
        "colours": list(ramps.VIRIDIS),
        "no_data": ramps.NO_DATA,
        "area": ramps.AREA,
        "background": ramps.BACKGROUND,
        "roads": {n: {s: ramps.road_ramp(n, s, tops[n]).as_json() for s in ramps.STATISTICS} for n in names},
        "points": {n: ramps.point_ramp(n, tops[n]).as_json() for n in names},
        "ratings": ramps.elo_ramp().as_json(),
    }
    return RampsDoc.model_validate(doc)


@router.get("/style.json", summary="MapLibre style of our layers, coloured as /map")
async def style_json(request: Request, choice: Annotated[Choice, Depends()]) -> StyleDoc:
    return await build_style(request, choice)


async def build_style(request: Request, choice: Choice, only: str | None = None) -> StyleDoc:
    """The style of all our layers, or with `only` of that one (no background: QGIS, which
    reads it for one layer, cannot draw one)."""
    base = _base(request)
    layers = request.app.state.layers
    if only is not None:
        layers = {only: layers[only]}
    ramp = await ramps_for(request, choice)
    extent = await request.app.state.extent(ROADS)
    center = extent.center(0, 22)
    style_layers: list[dict] = []
    if only is None:
        style_layers.append(
            {"id": "background", "type": "background", "paint": {"background-color": ramps.BACKGROUND}}
        )
    if AREAS in layers:
        style_layers += [
            {
                "id": "areas-fill",
                "type": "fill",
                "source": "areas",
                "source-layer": AREAS,
                "paint": {"fill-color": ramps.AREA, "fill-opacity": 0.15},
            },
            {
                "id": "areas-line",
                "type": "line",
                "source": "areas",
                "source-layer": AREAS,
                "paint": {"line-color": ramps.AREA, "line-width": 2},
            },
        ]
    if ROADS in layers:
        style_layers.append(
            {
                "id": "roads",
                "type": "line",
                "source": "roads",
                "source-layer": ROADS,
                "layout": {"line-cap": "round", "line-join": "round"},
                "paint": {
                    "line-color": ramp[ROADS].maplibre(),
                    "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 16, 5],
                },
            }
        )
    if POINTS in layers:
        style_layers.append(
            {
                "id": "points",
                "type": "circle",
                "source": "points",
                "source-layer": POINTS,
                "minzoom": layers[POINTS].minzoom,
                "paint": {
                    "circle-radius": 3,
                    "circle-color": ramp[POINTS].maplibre(),
                    "circle-stroke-color": "#333",
                    "circle-stroke-width": 0.5,
                },
            }
        )
    if RATINGS in layers:
        style_layers.append(
            {
                "id": "ratings",
                "type": "circle",
                "source": "ratings",
                "source-layer": RATINGS,
                "paint": {
                    "circle-radius": 5,
                    "circle-color": ramp[RATINGS].maplibre(),
                    "circle-stroke-color": "#000",
                    "circle-stroke-width": 1.5,
                },
            }
        )
    sources = {
        layer_id.removeprefix("api."): {"type": "vector", "url": f"{base}/{layer_id}/tilejson.json"}
        for layer_id in (ROADS, AREAS, POINTS, RATINGS)
        if layer_id in layers
    }
    doc = {
        "version": 8,
        "name": f"streetaudit: {choice.element} {choice.statistic}",
        "center": center[:2],
        "zoom": center[2],
        "sources": sources,
        "layers": style_layers,
    }
    return StyleDoc.model_validate(doc)


# -- QGIS ----------------------------------------------------------------------------------


def _rgba(colour: str, alpha: float = 1.0) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"{r},{g},{b},{round(alpha * 255)}"


def _symbol_layer(
    parent: ET.Element, cls: str, props: dict[str, str], colour_key: str, expression: str | None
):
    layer = ET.SubElement(parent, "layer", {"class": cls, "enabled": "1", "pass": "0", "locked": "0"})
    for k, v in props.items():
        ET.SubElement(layer, "prop", {"k": k, "v": v})
    defined = ET.SubElement(ET.SubElement(layer, "data_defined_properties"), "Option", {"type": "Map"})
    ET.SubElement(defined, "Option", {"type": "QString", "name": "name", "value": ""})
    properties = ET.SubElement(defined, "Option", {"type": "Map", "name": "properties"})
    if expression is not None:
        colour = ET.SubElement(properties, "Option", {"type": "Map", "name": colour_key})
        ET.SubElement(colour, "Option", {"type": "bool", "name": "active", "value": "true"})
        ET.SubElement(colour, "Option", {"type": "QString", "name": "expression", "value": expression})
        ET.SubElement(colour, "Option", {"type": "int", "name": "type", "value": "3"})
    ET.SubElement(defined, "Option", {"type": "QString", "name": "type", "value": "collection"})


QGIS_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"


def qml(layer: Layer, ramp: ramps.Ramp | None) -> bytes:
    """A QGIS vector-tile style (QgsVectorTileBasicRenderer) for one of our XYZ layers."""
    root = ET.Element("qgis", {"version": "3.22.0", "styleCategories": "AllStyleCategories"})
    add_symbology(root, layer, ramp)
    return (QGIS_DOCTYPE + "\n" + ET.tostring(root, encoding="unicode") + "\n").encode()


def add_symbology(root: ET.Element, layer: Layer, ramp: ramps.Ramp | None) -> None:
    """The renderer, labeling, blend mode and opacity elements of a QML, under `root` (a
    style file's <qgis> or a project's <maplayer>)."""
    kind = layer.geometry_type or "point"
    styles = ET.SubElement(ET.SubElement(root, "renderer", {"type": "basic"}), "styles")
    style = ET.SubElement(
        styles,
        "style",
        {
            "name": layer.name,
            "layer": layer.id,
            "geometry": str(_GEOMETRY.get(kind, 0)),
            "expression": "",
            "enabled": "1",
            "min-zoom": str(layer.minzoom) if layer.minzoom > 0 else "-1",
            "max-zoom": "-1",
        },
    )
    symbols = ET.SubElement(style, "symbols")
    expression = ramp.qgis() if ramp is not None else None
    if kind == "line":
        symbol = ET.SubElement(
            symbols, "symbol", {"type": "line", "name": "0", "alpha": "1", "clip_to_extent": "1"}
        )
        props = {"line_color": _rgba(ramps.NO_DATA), "line_width": "0.8", "line_width_unit": "MM"}
        props |= {"capstyle": "round", "joinstyle": "round"}
        _symbol_layer(symbol, "SimpleLine", props, "outlineColor", expression)
    elif kind == "polygon":
        symbol = ET.SubElement(
            symbols, "symbol", {"type": "fill", "name": "0", "alpha": "1", "clip_to_extent": "1"}
        )
        props = {"color": _rgba(ramps.AREA, 0.15), "outline_color": _rgba(ramps.AREA), "outline_width": "0.5"}
        props |= {"outline_width_unit": "MM", "style": "solid", "outline_style": "solid"}
        _symbol_layer(symbol, "SimpleFill", props, "fillColor", expression)
    else:
        symbol = ET.SubElement(
            symbols, "symbol", {"type": "marker", "name": "0", "alpha": "1", "clip_to_extent": "1"}
        )
        props = {"name": "circle", "color": _rgba(ramps.NO_DATA), "size": "2", "size_unit": "MM"}
        props |= {"outline_color": "51,51,51,255", "outline_width": "0.2", "outline_width_unit": "MM"}
        _symbol_layer(symbol, "SimpleMarker", props, "fillColor", expression)
    ET.SubElement(ET.SubElement(root, "labeling", {"type": "basic"}), "styles")
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "layerOpacity").text = "1"


@router.get(
    "/{layer_id}.qml",
    summary="QGIS style of one tile layer, coloured as /map",
    response_class=Response,
    responses={200: {"content": {QML_MEDIA_TYPE: {}}}},
)
async def layer_qml(
    request: Request, layer: Annotated[Layer, Depends(get_layer)], choice: Annotated[Choice, Depends()]
) -> Response:
    ramp = (await ramps_for(request, choice)).get(layer.id)
    return Response(
        qml(layer, ramp),
        media_type=QML_MEDIA_TYPE,
        headers={"Content-Disposition": f'inline; filename="{layer.id}.qml"'},
    )
