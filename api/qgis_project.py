"""/project.qgs: a QGIS project of our tile layers, styled as /map and opening on the city.

QGIS 3.22 gives every vector-tile layer the world's extent, whatever the server says, so
a user who adds our XYZ connection must find the city by hand. A project carries what a
connection cannot: the view it opens on (the roads' extent) and each layer's style (the
QML's renderer, api/styles.py). Layers from the top: ratings, points, roads, areas.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from streetaudit.api.bounds import mercator
from streetaudit.api.styles import (
    AREAS,
    POINTS,
    QGIS_DOCTYPE,
    RATINGS,
    ROADS,
    Choice,
    add_symbology,
    ramps_for,
)

router = APIRouter(tags=["styles"])

QGS_MEDIA_TYPE = "application/x-qgis-project"
_ORDER = (RATINGS, POINTS, ROADS, AREAS)  # top first, as QGIS lists a layer tree


# Web mercator as QGIS writes it; QGIS reads a CRS from these, not from the authid alone.
_WEB_MERCATOR = {
    "proj4": "+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m +nadgrids=@null +wktext +no_defs",
    "srsid": "3857",
    "srid": "3857",
    "authid": "EPSG:3857",
    "description": "WGS 84 / Pseudo-Mercator",
}


def _crs(parent: ET.Element) -> None:
    ref = ET.SubElement(parent, "spatialrefsys")
    for tag, text in _WEB_MERCATOR.items():
        ET.SubElement(ref, tag).text = text


def _box(parent: ET.Element, tag: str, box: tuple[float, float, float, float]) -> ET.Element:
    element = ET.SubElement(parent, tag)
    for name, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        ET.SubElement(element, name).text = repr(value)
    return element


@router.get(
    "/project.qgs",
    summary="QGIS project of the tile layers, styled as /map, opening on the city",
    response_class=Response,
    responses={200: {"content": {QGS_MEDIA_TYPE: {}}}},
)
async def project(request: Request, choice: Annotated[Choice, Depends()]) -> Response:
    base = str(request.base_url).rstrip("/")
    layers = request.app.state.layers
    ramp = await ramps_for(request, choice)
    extent = await request.app.state.extent(ROADS)
    xmin, ymin = mercator(extent.west, extent.south)
    xmax, ymax = mercator(extent.east, extent.north)
    box = (xmin, ymin, xmax, ymax)
    chosen = [layers[i] for i in _ORDER if i in layers]

    root = ET.Element("qgis", {"projectname": "streetaudit", "version": "3.22.0"})
    ET.SubElement(root, "title").text = f"streetaudit: {choice.element} {choice.statistic}"
    _crs(ET.SubElement(root, "projectCrs"))
    tree = ET.SubElement(root, "layer-tree-group")
    for layer in chosen:
        ET.SubElement(
            tree,
            "layer-tree-layer",
            {"id": layer.id, "name": layer.id, "providerKey": "", "checked": "Qt::Checked", "expanded": "0"},
        )
    canvas = ET.SubElement(root, "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"})
    ET.SubElement(canvas, "units").text = "meters"
    _box(canvas, "extent", box)
    ET.SubElement(canvas, "rotation").text = "0"
    _crs(ET.SubElement(canvas, "destinationsrs"))
    view = ET.SubElement(root, "ProjectViewSettings", {"UseProjectScales": "0"})
    default = ET.SubElement(
        view, "DefaultViewExtent", dict(zip(("xmin", "ymin", "xmax", "ymax"), map(repr, box), strict=True))
    )
    _crs(default)
    maplayers = ET.SubElement(root, "projectlayers")
    for layer in chosen:
        source = urlencode(
            {
                "type": "xyz",
                "url": f"{base}/{layer.id}/{{z}}/{{x}}/{{y}}.pbf",
                "zmin": str(layer.minzoom),
                "zmax": str(layer.maxzoom),
            }
        )
        element = ET.SubElement(
            maplayers, "maplayer", {"type": "vector-tile", "styleCategories": "AllStyleCategories"}
        )
        _box(element, "extent", box)
        ET.SubElement(element, "id").text = layer.id
        ET.SubElement(element, "datasource").text = source
        ET.SubElement(element, "layername").text = layer.id
        _crs(ET.SubElement(element, "srs"))
        add_symbology(element, layer, ramp.get(layer.id))
    body = QGIS_DOCTYPE + "\n" + ET.tostring(root, encoding="unicode") + "\n"
    return Response(
        body.encode(),
        media_type=QGS_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="streetaudit.qgs"'},
    )
