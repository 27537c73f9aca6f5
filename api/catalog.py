"""Tile layers, discovered from the database catalog like pg_tileserv's function layers.

A layer is a function in schema `api` taking (z integer, x integer, y integer, ...) and
returning bytea that the API's role may execute. Its id (`api.roads`) is the only
thing from a URL that ever reaches SQL text, and only after it was found here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import AsyncConnection

_LAYERS = """
SELECT n.nspname, p.proname, coalesce(obj_description(p.oid, 'pg_proc'), ''),
       pg_get_function_arguments(p.oid),
       l.properties, l.property_types, l.minzoom, l.maxzoom, l.geometry_type
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
LEFT JOIN api.tile_layers AS l ON l.id = n.nspname || '.' || p.proname
WHERE n.nspname = 'api'
  AND p.prorettype = 'bytea'::regtype
  AND p.pronargs >= 3
  AND p.proargtypes[0] = 'integer'::regtype
  AND p.proargtypes[1] = 'integer'::regtype
  AND p.proargtypes[2] = 'integer'::regtype
  AND p.proargnames[1:3] = ARRAY['z', 'x', 'y']
  AND has_function_privilege(p.oid, 'EXECUTE')
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Layer:
    schema: str
    name: str
    description: str
    arguments: str
    properties: tuple[str, ...] = ()
    property_types: tuple[str, ...] = ()
    minzoom: int = 0
    maxzoom: int = 22
    geometry_type: str | None = None
    takes_properties: bool = field(default=False)

    @property
    def id(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def takes_max_bytes(self) -> bool:
        return "max_bytes integer" in self.arguments

    @property
    def fields(self) -> dict[str, str]:
        return dict(zip(self.properties, self.property_types, strict=False))


async def load_layers(conn: AsyncConnection) -> dict[str, Layer]:
    rows = await (await conn.execute(_LAYERS)).fetchall()
    layers = {}
    for schema, name, description, arguments, props, types, minzoom, maxzoom, gtype in rows:
        layer = Layer(
            schema,
            name,
            description,
            arguments,
            tuple(props or ()),
            tuple(types or ()),
            minzoom if minzoom is not None else 0,
            maxzoom if maxzoom is not None else 22,
            gtype,
            takes_properties="properties text" in arguments,
        )
        layers[layer.id] = layer
    return layers
