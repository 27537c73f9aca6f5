"""Read road and area files (GeoJSON, GeoPackage, Shapefile, OSM PBF) into clean EPSG:4326 parts.

Everything a file can get wrong is found here, before the database is touched, so a
load either writes the whole file or nothing.

NUL bytes: PostgreSQL text cannot hold them, and GDAL reads text as C strings, so a name
with a NUL arrived cut short ('Ab\\0cd' → 'Ab') without a word. Where the format lets us
read the raw value (GeoJSON, GeoPackage) the NUL is removed from the whole value instead,
and every such repair is reported with its row and field.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from streetaudit.flows.errors import InputError

OSM_SUFFIXES = (".pbf", ".osm")


@dataclass
class Feature:
    source_id: str
    name: str | None
    kind: str | None
    geometry: shapely.Geometry


@dataclass
class ReadResult:
    features: list[Feature] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)
    rows: int = 0
    fields: list[str] = field(default_factory=list)  # the file's attribute fields
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (row number, what was repaired)

    def refuse_if_all_skipped(self, path: Path, what: str) -> None:
        """Every row was unusable: name them and why, rather than only how many."""
        if self.features or not self.skipped:
            return
        shown = "; ".join(f"row {row}: {reason}" for row, reason in self.skipped[:5])
        more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        raise InputError(f"{path}: no usable {what} ({shown}{more})")


def is_osm(path: Path) -> bool:
    return path.name.lower().endswith(OSM_SUFFIXES)


def _read_frame(path: Path, layer: str | None, where: str | None = None):
    import pyogrio

    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        return pyogrio.read_dataframe(path, layer=layer, where=where, fid_as_index=True)
    except Exception as error:  # pyogrio raises several unrelated types for unreadable files
        raise InputError(f"{path}: cannot read it as a vector file ({error})") from error


def _field_names(frame) -> list[str]:
    return [str(c) for c in frame.columns if c != "geometry"]


def _check_fields(path: Path, frame, fields: dict[str, str | None]) -> None:
    for option, name in fields.items():
        if name is not None and name not in frame.columns:
            available = ", ".join(c for c in frame.columns if c != "geometry") or "none"
            raise InputError(f"{path}: field '{name}' ({option}) not found; fields are: {available}")


def _to_wgs84(path: Path, frame):
    if frame.crs is None:
        raise InputError(
            f"{path}: the file has no coordinate reference system; assign one (e.g. with ogr2ogr -a_srs)"
        )
    if frame.crs.to_epsg() != 4326:
        try:
            frame = frame.to_crs(4326)
        except Exception as error:
            raise InputError(f"{path}: cannot reproject from {frame.crs} to EPSG:4326 ({error})") from error
    return frame


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


class _Values:
    """Text of one field per row, with NUL bytes removed (and reported) instead of cutting the value."""

    def __init__(self, path: Path, frame, layer: str | None, result: ReadResult) -> None:
        self.frame = frame
        self.result = result
        self.raw: dict[tuple[int, str], str] = {}
        self.path, self.layer = path, layer

    def load_raw(self, fields: list[str | None]) -> None:
        self.raw = _raw_values_with_nul(
            self.path, self.layer, self.frame, [f for f in fields if f is not None and f]
        )

    def get(self, field_name: str | None, index: int) -> str | None:
        if not field_name:
            return None
        value = self.raw.get((index, field_name), self.frame[field_name].iloc[index])
        if isinstance(value, str) and "\x00" in value:
            clean = _text(value.replace("\x00", ""))
            self.result.warnings.append(
                (index + 1, f"field '{field_name}': NUL byte removed (PostgreSQL text cannot hold it): "
                 f"{value!r} → {clean!r}")
            )  # fmt: skip
            return clean
        return _text(value)


def _raw_values_with_nul(
    path: Path, layer: str | None, frame, fields: list[str]
) -> dict[tuple[int, str], str]:
    """(row index, field) -> the whole value, for values GDAL cut at a NUL byte."""
    if not fields:
        return {}
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        return _geojson_nul_values(path, frame, fields)
    if suffix == ".gpkg":
        return _gpkg_nul_values(path, layer, frame, fields)
    return {}


def _geojson_nul_values(path: Path, frame, fields: list[str]) -> dict[tuple[int, str], str]:
    raw = path.read_bytes()
    if b"\\u0000" not in raw:  # JSON can only carry a NUL escaped
        return {}
    try:
        features = json.loads(raw).get("features") or []
    except (ValueError, AttributeError):
        return {}
    if len(features) != len(frame):
        return {}
    found = {}
    for index, feature in enumerate(features):
        properties = (feature or {}).get("properties") or {}
        for name in fields:
            value = properties.get(name)
            if isinstance(value, str) and "\x00" in value:
                found[(index, name)] = value
    return found


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _gpkg_nul_values(path: Path, layer: str | None, frame, fields: list[str]) -> dict[tuple[int, str], str]:
    import pyogrio

    table = layer or pyogrio.list_layers(path)[0][0]
    position = {fid: index for index, fid in enumerate(frame.index)}
    found = {}
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            # Identifiers come from the GeoPackage's own catalog (gpkg_contents, table_info).
            known = {r[0] for r in conn.execute("SELECT table_name FROM gpkg_contents")}
            if table not in known:
                return {}
            columns = {r[1]: r[5] for r in conn.execute(f"PRAGMA table_info({_quoted(table)})")}
            fid = next((c for c, pk in columns.items() if pk), None)
            for name in fields:
                if fid is None or name not in columns:
                    continue
                column = _quoted(name)
                rows = conn.execute(
                    f"SELECT {_quoted(fid)}, CAST({column} AS BLOB) FROM {_quoted(table)} "
                    f"WHERE instr(CAST({column} AS BLOB), x'00') > 0"
                )
                for key, blob in rows:
                    if key in position:
                        found[(position[key], name)] = bytes(blob).decode("utf-8", "replace")
    except sqlite3.Error:
        return {}
    return found


def read_lines(
    path: Path,
    *,
    layer: str | None = None,
    name_field: str | None = None,
    kind_field: str | None = None,
    kinds: list[str] | None = None,
) -> ReadResult:
    """Road centre lines: multi-lines split into parts, degenerate ones skipped with their row."""
    path = Path(path)
    osm = is_osm(path)
    if osm:
        layer = layer or "lines"
        name_field = name_field or "name"
        kind_field = kind_field or "highway"
    frame = _read_frame(path, layer, where="highway IS NOT NULL" if osm and layer == "lines" else None)
    _check_fields(path, frame, {"--name-field": name_field, "--kind-field": kind_field})
    if kinds and kind_field is None:
        raise InputError(f"{path}: --kinds needs --kind-field to say which field holds the kind")
    frame = _to_wgs84(path, frame)
    result = ReadResult(rows=len(frame), fields=_field_names(frame))
    values = _Values(path, frame, layer, result)
    values.load_raw([name_field, kind_field])
    ids = frame["osm_id"].tolist() if osm and "osm_id" in frame.columns else None
    wanted = set(kinds) if kinds else None
    for index, geom in enumerate(frame.geometry.values):
        row = index + 1
        name = values.get(name_field, index)
        kind = values.get(kind_field, index)
        if wanted is not None and kind not in wanted:
            continue
        base_id = str(ids[index]) if ids is not None and ids[index] is not None else str(row)
        parts, reason = _line_parts(geom)
        if reason:
            result.skipped.append((row, reason))
            continue
        for part_no, part in enumerate(parts):
            source_id = base_id if len(parts) == 1 else f"{base_id}.{part_no + 1}"
            result.features.append(Feature(source_id, name, kind, part))
    result.refuse_if_all_skipped(path, "road lines")
    return result


def _line_parts(geom) -> tuple[list[shapely.LineString], str | None]:
    if geom is None or geom.is_empty:
        return [], "empty geometry"
    if geom.geom_type not in ("LineString", "MultiLineString"):
        return [], f"not a line ({geom.geom_type})"
    geom = shapely.force_2d(geom)
    raw = list(geom.geoms) if geom.geom_type == "MultiLineString" else [geom]
    parts = []
    for part in raw:
        coords = np.asarray(part.coords)
        if not np.isfinite(coords).all():
            return [], "non-finite coordinates"
        if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
            return [], "coordinates outside longitude/latitude range"
        # Drop repeated vertices; a line with fewer than two distinct vertices has no length.
        keep = np.ones(len(coords), dtype=bool)
        keep[1:] = (np.diff(coords, axis=0) != 0).any(axis=1)
        coords = coords[keep]
        if len(coords) >= 2:
            parts.append(shapely.LineString(coords))
    if not parts:
        return [], "degenerate line (fewer than two distinct points)"
    return parts, None


def read_areas(
    path: Path,
    *,
    layer: str | None = None,
    name_field: str,
    kind: str = "core",
    kind_field: str | None = None,
) -> ReadResult:
    """Heritage areas as MultiPolygons; invalid rings are repaired, empty ones skipped."""
    path = Path(path)
    if is_osm(path):
        layer = layer or "multipolygons"
    frame = _read_frame(path, layer)
    _check_fields(path, frame, {"--name-field": name_field, "--kind-field": kind_field})
    frame = _to_wgs84(path, frame)
    result = ReadResult(rows=len(frame), fields=_field_names(frame))
    values = _Values(path, frame, layer, result)
    values.load_raw([name_field, kind_field])
    for index, geom in enumerate(frame.geometry.values):
        row = index + 1
        name = values.get(name_field, index)
        if name is None:
            result.skipped.append((row, f"no name in field '{name_field}'"))
            continue
        area_kind = values.get(kind_field, index) or kind
        polygon, reason = _multipolygon(geom)
        if reason:
            result.skipped.append((row, reason))
            continue
        result.features.append(Feature(str(row), name, area_kind, polygon))
    result.refuse_if_all_skipped(path, "areas")
    return result


def _multipolygon(geom) -> tuple[shapely.MultiPolygon | None, str | None]:
    if geom is None or geom.is_empty:
        return None, "empty geometry"
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return None, f"not a polygon ({geom.geom_type})"
    geom = shapely.force_2d(geom)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        polygons = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")]
        geom = shapely.union_all(polygons) if polygons else shapely.Polygon()
    if geom.is_empty or geom.area == 0:
        return None, "degenerate polygon (no area)"
    if geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    return geom, None
