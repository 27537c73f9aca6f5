"""pg_tileserv's preview pages: /index.html (the layers, with links) and /{layer}.html (a map).

Someone moving from pg_tileserv opens these first; a layer that looks wrong there is
wrong in every client. MapLibre is ours (node_modules, /static/maplibre), never a CDN.
Layer ids, descriptions and attributes come from the database catalog and are escaped.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from streetaudit.api.catalog import Layer, load_layers
from streetaudit.api.dependencies import get_layer
from streetaudit.api.errors import Unavailable
from streetaudit.api.map import maplibre_ready

router = APIRouter(tags=["tiles"])

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  {head}
  <style>
    body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; }}
    main {{ max-width: 60rem; margin: 1rem auto; padding: 0 1rem; }}
    #map {{ position: absolute; inset: 0 0 0 22rem; }}
    #side {{ position: absolute; inset: 0 auto 0 0; width: 21rem; padding: 0.5rem; overflow: auto; }}
    #info {{ white-space: pre-wrap; font-family: monospace; font-size: 12px; }}
    td, th {{ text-align: left; padding: 0.2rem 0.6rem 0.2rem 0; vertical-align: top; }}
  </style>
</head>
<body{body}>
{content}
</body>
</html>
"""


def _links(layer: Layer) -> str:
    i = escape(layer.id)
    return (
        f'<a href="{i}.html">preview</a> · <a href="{i}.json">layer</a> · '
        f'<a href="{i}/tilejson.json">TileJSON</a> · <a href="{i}.qml">QGIS style</a>'
    )


@router.api_route(
    "/index.html", methods=["GET", "HEAD"], summary="Tile layers, with previews (as pg_tileserv)"
)
async def index_page(request: Request) -> HTMLResponse:
    async with request.app.state.db.pool.connection() as conn:
        request.app.state.layers = layers = await load_layers(conn)
    rows = "\n".join(
        f'<tr><td><a href="{escape(layer.id)}.html">{escape(layer.id)}</a></td>'
        f"<td>{escape(layer.description)}</td><td>{_links(layer)}</td></tr>"
        for layer in layers.values()
    )
    content = (
        "<main><h1>streetaudit tile layers</h1>"
        '<p>Function layers, as pg_tileserv serves them: <a href="index.json">index.json</a>; '
        'all of them styled as the map: <a href="style.json">style.json</a>, <a href="map">/map</a>.</p>'
        f"<table><thead><tr><th>layer</th><th>description</th><th></th></tr></thead><tbody>\n{rows}\n"
        "</tbody></table></main>"
    )
    return HTMLResponse(_PAGE.format(title="streetaudit tile layers", head="", body="", content=content))


@router.api_route(
    "/{layer_id}.html", methods=["GET", "HEAD"], summary="Map preview of one tile layer (as pg_tileserv)"
)
async def layer_page(request: Request, layer: Annotated[Layer, Depends(get_layer)]) -> HTMLResponse:
    maplibre_dir = request.app.state.settings.maplibre_dir
    if not maplibre_ready(maplibre_dir):
        raise Unavailable(
            f"maplibre-gl is not installed under {maplibre_dir}: run `npm ci` in the repository root"
        )
    attributes = "".join(
        f"<tr><td>{escape(n)}</td><td>{escape(t)}</td></tr>" for n, t in layer.fields.items()
    )
    content = (
        f'<div id="side"><h2>{escape(layer.id)}</h2><p>{escape(layer.description)}</p><p>{_links(layer)}</p>'
        f"<p>zoom {layer.minzoom}–{layer.maxzoom}</p><table>{attributes}</table>"
        '<p><a href="index.html">all layers</a></p><div id="info"></div></div><div id="map"></div>'
        '<script src="static/maplibre/maplibre-gl.js"></script><script src="static/app/preview.js"></script>'
    )
    body = f' data-layer="{escape(layer.id)}" data-geometry="{escape(layer.geometry_type or "point")}"'
    head = '<link rel="stylesheet" href="static/maplibre/maplibre-gl.css">'
    return HTMLResponse(
        _PAGE.format(title=f"{escape(layer.id)} preview", head=head, body=body, content=content)
    )
