"""GET tile requests answered before FastAPI's routing: a map asks for dozens per view.

Measured with bench/tiles.py, FastAPI's routing, dependency solving and exception layers
cost about 1 ms of CPU per tile request, as much as the z14 tile query itself; this plain
ASGI middleware answers the same requests in a fraction of that. It sits inside the CORS
and gzip middleware (api/factory.py), so those apply as before, and it answers through
the same functions as the tile route (api/tiles.py `render_tile`, the catalog lookup,
the parameter checks and the error table), so the two cannot differ: the route still
serves HEAD, the ArcGIS address form and the OpenAPI description.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from streetaudit.api.dependencies import find_layer, parse_tile
from streetaudit.api.errors import error_detail, error_status
from streetaudit.api.tiles import MVT_MEDIA_TYPE, parse_max_bytes, parse_properties, render_tile

# The route's own patterns, /{layer_id}/{z}/{x}/{y}.pbf and .mvt: any four segments.
_TILE_PATH = re.compile(r"^/([^/]+)/([^/]+)/([^/]+)/([^/]+)\.(?:pbf|mvt)$")


def route_path(scope: Scope) -> str:
    """The path below the app's root_path, as Starlette's router matches it."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class TileFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _TILE_PATH.match(route_path(scope))
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        # As Starlette's QueryParams: blank values kept, the last of a repeated name wins.
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if_none_match = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == b"if-none-match"), None
        )
        state = scope["app"].state
        try:
            layer = await find_layer(state, match[1])
            z, x, y = parse_tile(match[2], match[3], match[4])
            props = parse_properties(layer, query.get("properties"))
            budget = parse_max_bytes(layer, query.get("max_bytes"))
            status, headers, body = await render_tile(
                state, layer, z, x, y, props, budget, query.get("v"), if_none_match
            )
        except Exception as error:
            answered = error_status(error)
            if answered is None:
                raise
            status = answered
            body = json.dumps(
                {"detail": error_detail(error)}, ensure_ascii=False, separators=(",", ":")
            ).encode()
            headers = {"content-type": "application/json"}
        else:
            if status == 200:
                headers = {**headers, "content-type": MVT_MEDIA_TYPE}
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        if status != 304:
            raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
