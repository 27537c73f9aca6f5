"""/docs must describe what every JSON endpoint returns, not only that it returns something."""

from __future__ import annotations

from streetaudit.api.factory import create_app

# Routes that answer with something else than a JSON document (tiles, pages, files, CSV-or-JSON
# tables) declare their media types instead; they are checked for that.
NOT_JSON = {
    "/{layer_id}/{z}/{x}/{y}.pbf",
    "/index.html",
    "/{layer_id}.html",
    "/{layer_id}.qml",
    "/project.qgs",
    "/map",
    "/rate",
    "/rate/image/{image_id}",
    "/label",
    "/label/api/images/{image_id}",
    "/images/{image_id}.jpg",
    "/images/{image_id}/mask.png",
}


def test_every_json_route_has_a_response_schema() -> None:
    app = create_app("postgresql://nobody@127.0.0.1:1/none")  # the schema needs no database
    spec = app.openapi()
    routes = [
        (path, method)
        for path, operations in spec["paths"].items()
        if path not in NOT_JSON
        for method in operations
    ]
    assert len(routes) >= 5
    missing = []
    for path, method in routes:  # every JSON route: the spec lists what include_in_schema keeps
        ok = spec["paths"][path][method]["responses"].get("200") or next(
            iter(v for k, v in spec["paths"][path][method]["responses"].items() if k.startswith("2")), {}
        )
        schema = ok.get("content", {}).get("application/json", {}).get("schema", {})
        # an empty schema ({}) or a bare object says nothing about the fields
        if not schema or schema in ({"type": "object"}, {"additionalProperties": True, "type": "object"}):
            missing.append(f"{method.upper()} {path}")
    assert not missing, missing
