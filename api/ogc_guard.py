"""What may reach tipg: every /ogc request's parameters, checked before tipg turns them into SQL.

tipg renders a CQL2 filter into SQL text and passes any function call straight through
(`filter=set_config('role','none',false)='x'`), and it lets malformed bbox, datetime,
offset or ids reach PostgreSQL, which answers with errors that quoted our SQL. This
dependency runs before tipg's own: a filter may only name the collection's columns and use
the standard operators, literals must be finite, and every other parameter must parse and
be in range, else 400 (404 for an item that cannot exist) with a short message.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ciso8601 import parse_rfc3339
from cql2 import Expr
from fastapi import HTTPException, Request
from morecantile import tms as default_tms

# cql2's text parser backtracks: a malformed filter costs about length x 2^nesting (24 unclosed
# brackets take minutes; 10,000 crash the process), and tipg parses it again after us. Text
# filters are therefore kept short and shallow; cql2-json is parsed linearly and may be longer.
MAX_TEXT_CHARS = 2000
MAX_TEXT_DEPTH = 6
MAX_JSON_CHARS = 16000
MAX_JSON_DEPTH = 24
MAX_OFFSET = 2**31 - 1
_INT64 = 2**63 - 1

# CQL2 operators as cql2-json names them: comparison, logic, LIKE/BETWEEN/IN/IS NULL,
# arithmetic, case-insensitive comparison, spatial, temporal and array predicates.
ALLOWED_OPS = frozenset(
    {"and", "or", "not", "=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isNull"}
    | {"+", "-", "*", "/", "casei"}
    | {f"s_{p}" for p in ("intersects", "equals", "disjoint", "touches", "within", "overlaps", "crosses", "contains")}
    | {
        f"t_{p}"
        for p in (
            "after", "before", "contains", "disjoint", "during", "equals", "finishedby", "finishes",
            "intersects", "meets", "metby", "overlappedby", "overlaps", "startedby", "starts",
        )
    }
    | {"a_equals", "a_contains", "a_containedby", "a_overlaps"}
)  # fmt: skip
_GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"}
)
_INTEGER_TYPES = frozenset({"int2", "int4", "int8", "smallint", "integer", "bigint", "serial", "bigserial"})
_NUMBER_TYPES = frozenset({"float4", "float8", "numeric", "real", "double precision"})
# Query parameters tipg reads itself; any other parameter named like a column is an equality filter.
_RESERVED = frozenset(
    {
        "f", "ids", "datetime", "bbox", "properties", "filter", "filter-lang", "geom-column",
        "datetime-column", "limit", "offset", "bbox-only", "simplify", "sortby",
    }
)  # fmt: skip


def bad(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def _text_depth(text: str) -> int:
    """Bracket nesting outside quotes, as cql2-text reads quotes ('' and "" double, no backslash)."""
    depth = deepest = 0
    quote = None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
    return deepest


def _json_depth(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + max((_json_depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((_json_depth(v) for v in node), default=0)
    return 0


def _finite_numbers(values: Any, what: str) -> None:
    for v in values if isinstance(values, list) else [values]:
        if isinstance(v, list):
            _finite_numbers(v, what)
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise bad(f"filter: {what} must hold finite numbers")


def _check_node(node: Any, columns: set[str]) -> None:
    """Allow literals, the collection's columns and ALLOWED_OPS; nothing else reaches SQL."""
    if node is None or isinstance(node, bool | str):
        return
    if isinstance(node, int | float):
        if not math.isfinite(node):
            raise bad("filter: numbers must be finite")
        return
    if isinstance(node, list):
        for item in node:
            _check_node(item, columns)
        return
    if not isinstance(node, dict):
        raise bad("filter: unsupported expression")
    if "op" in node:
        op = node["op"]
        if op not in ALLOWED_OPS:
            raise bad(f"filter: {str(op)[:40]!r} is not an allowed operator (functions cannot be called)")
        _check_node(node.get("args", []), columns)
        return
    if "property" in node:
        name = node["property"]
        if name not in columns:
            raise bad(f"filter: unknown property {str(name)[:60]!r}; queryables lists the columns")
        return
    if node.get("type") in _GEOMETRY_TYPES:
        if "coordinates" in node:
            _finite_numbers(node["coordinates"], "geometry coordinates")
        for part in node.get("geometries", []):
            _check_node(part, columns)
        return
    if "bbox" in node:
        if not isinstance(node["bbox"], list) or len(node["bbox"]) not in (4, 6):
            raise bad("filter: BBOX takes 4 or 6 numbers")
        _finite_numbers(node["bbox"], "BBOX")
        return
    if set(node) in ({"timestamp"}, {"date"}):
        value = next(iter(node.values()))
        _rfc3339(value if set(node) == {"timestamp"} else f"{value}T00:00:00Z", "filter")
        return
    if set(node) == {"interval"} and isinstance(node["interval"], list) and len(node["interval"]) == 2:
        for part in node["interval"]:
            if isinstance(part, dict):
                _check_node(part, columns)
            elif part != "..":
                _rfc3339(part if "T" in str(part) else f"{part}T00:00:00Z", "filter")
        return
    raise bad("filter: unsupported expression")


def _check_size(text: str) -> None:
    """Bound the parser's work before cql2 sees the text (see MAX_TEXT_CHARS)."""
    if text.lstrip().startswith(("{", "[")):
        if len(text) > MAX_JSON_CHARS:
            raise bad(f"filter (cql2-json) is longer than {MAX_JSON_CHARS} characters")
        try:
            depth = _json_depth(json.loads(text))
        except (ValueError, RecursionError):
            raise bad("filter is not valid cql2-json") from None
        if depth > MAX_JSON_DEPTH:
            raise bad(f"filter (cql2-json) nests deeper than {MAX_JSON_DEPTH} levels")
        return
    if len(text) > MAX_TEXT_CHARS:
        raise bad(
            f"filter (cql2-text) is longer than {MAX_TEXT_CHARS} characters; longer ones can be cql2-json"
        )
    if _text_depth(text) > MAX_TEXT_DEPTH:
        raise bad(f"filter (cql2-text) nests brackets deeper than {MAX_TEXT_DEPTH} levels")


def check_filter(text: str, columns: set[str]) -> None:
    _check_size(text)
    try:
        tree = Expr(text).to_json()
    except Exception:  # cql2 raises a bare Exception with a multi-line parser trace
        raise bad("filter is not valid CQL2 (text or JSON)") from None
    _check_node(tree, columns)


def _rfc3339(value: Any, parameter: str) -> None:
    try:
        parse_rfc3339(str(value))
    except ValueError:
        raise bad(f"{parameter}: {str(value)[:40]!r} is not an RFC 3339 date-time") from None


def check_bbox(value: str) -> None:
    try:
        numbers = [float(p) for p in value.split(",")]
    except ValueError:
        raise bad("bbox must be comma-separated numbers") from None
    if len(numbers) not in (4, 6) or not all(math.isfinite(n) for n in numbers):
        raise bad("bbox must be 4 (or 6) finite numbers: minx,miny,maxx,maxy")
    lons, lats = (numbers[0], numbers[2]), (numbers[1], numbers[3])
    if len(numbers) == 6:
        lons, lats = (numbers[0], numbers[3]), (numbers[1], numbers[4])
    if any(abs(x) > 180 for x in lons) or any(abs(y) > 90 for y in lats) or lats[0] > lats[1]:
        raise bad("bbox must lie within -180..180, -90..90 degrees with miny <= maxy")


def check_datetime(value: str, has_datetime_column: bool) -> None:
    parts = value.split("/")
    if len(parts) > 2:
        raise bad("datetime must be one RFC 3339 date-time or an interval start/end")
    for part in parts:
        if part not in ("..", "") or len(parts) == 1:
            _rfc3339(part, "datetime")
    if len(parts) == 2 and all(p in ("..", "") for p in parts):
        raise bad("datetime: an interval needs a start or an end")
    if not has_datetime_column:
        raise bad("datetime: this collection has no date or time column")


def _check_number(
    value: str, parameter: str, *, integer: bool, low: float = -math.inf, high: float = math.inf
):
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise bad(f"{parameter} must be {'an integer' if integer else 'a number'}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise bad(f"{parameter} must be between {low:g} and {high:g}")
    return number


def check_column_value(name: str, column_type: str, value: str) -> None:
    if column_type in _INTEGER_TYPES:
        _check_number(value, name, integer=True, low=-_INT64, high=_INT64)
    elif column_type in _NUMBER_TYPES:
        _check_number(value, name, integer=False)
    elif column_type in ("bool", "boolean") and value.lower() not in ("true", "false", "t", "f", "1", "0"):
        raise bad(f"{name} must be true or false")
    elif column_type in ("date", "timestamp", "timestamptz"):
        _rfc3339(value if "T" in value else f"{value}T00:00:00Z", name)


def check_item_id(collection, value: str) -> None:
    """An id that cannot be in an integer key is a 404, as tipg answers for a missing item."""
    column = collection.id_column
    if column is not None and column.type in _INTEGER_TYPES:
        try:
            ok = abs(int(value)) <= _INT64
        except ValueError:
            ok = False
        if not ok:
            raise HTTPException(status_code=404, detail=f"no item {value[:40]!r} in {collection.id}")


def check_tile(tms_id: str, z: str, x: str, y: str) -> None:
    if tms_id not in default_tms.list():
        return  # tipg answers unknown tile matrix sets itself
    matrices = default_tms.get(tms_id)
    zoom = _check_number(z, "z", integer=True, low=matrices.minzoom, high=matrices.maxzoom)
    matrix = matrices.matrix(zoom)
    _check_number(x, "x", integer=True, low=0, high=matrix.matrixWidth - 1)
    _check_number(y, "y", integer=True, low=0, high=matrix.matrixHeight - 1)


def _collection(request: Request):
    collection_id = request.path_params.get("collectionId")
    if collection_id is None:
        return None
    catalog = getattr(request.app.state, "collection_catalog", None)
    if catalog is None:
        raise HTTPException(status_code=503, detail="the OGC catalog is not loaded")
    collection = catalog["collections"].get(collection_id)
    if collection is None:
        raise HTTPException(status_code=404, detail=f"no collection {collection_id[:60]!r}")
    return collection


def _check_zoom_range(query) -> None:
    zooms = [
        _check_number(query[k], k, integer=True, low=0, high=30) for k in ("minzoom", "maxzoom") if k in query
    ]
    if len(zooms) == 2 and zooms[0] > zooms[1]:
        raise bad("minzoom must not exceed maxzoom")


def guard_ogc_request(request: Request) -> None:
    """FastAPI dependency for every tipg route (api/ogc.py includes the router with it).

    Synchronous on purpose: FastAPI runs it in a worker thread, so parsing a filter never
    blocks the event loop.
    """
    query = request.query_params
    path = request.path_params
    collection = _collection(request)
    if "bbox" in query:
        check_bbox(query["bbox"])
    if "offset" in query:
        _check_number(query["offset"], "offset", integer=True, low=0, high=MAX_OFFSET)
    if "simplify" in query:
        _check_number(query["simplify"], "simplify", integer=False, low=0, high=180)
    _check_zoom_range(query)
    if {"z", "x", "y"} <= set(path):
        check_tile(path.get("tileMatrixSetId", ""), path["z"], path["x"], path["y"])
    if collection is None:
        if "datetime" in query:
            check_datetime(query["datetime"], has_datetime_column=True)
        return
    if "datetime" in query:
        check_datetime(query["datetime"], bool(collection.datetime_columns))
    if "filter" in query:
        check_filter(query["filter"], {c.name for c in collection.properties})
    if "itemId" in path:
        check_item_id(collection, path["itemId"])
    for item_id in query.get("ids", "").split(",") if query.get("ids") else []:
        check_item_id(collection, item_id)
    columns = {c.name: c.type for c in collection.properties}
    for key, value in query.items():
        if key.lower() not in _RESERVED and key.lower() in columns:
            check_column_value(key, columns[key.lower()], value)
