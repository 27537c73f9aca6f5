"""`streetaudit stats export`: the published statistics as GeoPackage, GeoParquet or CSV files.

Reads schema `api` only, so an export shows exactly what analysts and the API see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import psycopg
import pyogrio
import shapely

from streetaudit.flows.errors import InputError

FORMATS = ("gpkg", "parquet", "csv")
# view -> whether it has a geometry column named geom
VIEWS = {
    "segment_stats": True,
    "area_stats": True,
    "point_elements": True,
    "area_comparison": False,
}


@dataclass
class ExportReport:
    files: list[Path]
    rows: dict[str, int]


def read_view(conn: psycopg.Connection, view: str) -> pd.DataFrame:
    spatial = VIEWS[view]
    query = psycopg.sql.SQL("SELECT * {} FROM {}").format(
        psycopg.sql.SQL(", ST_AsBinary(geom) AS geom_wkb") if spatial else psycopg.sql.SQL(""),
        psycopg.sql.Identifier("api", view),
    )
    cur = conn.execute(query)
    columns = [d.name for d in cur.description]
    frame = pd.DataFrame(cur.fetchall(), columns=columns)
    if not spatial:
        return frame
    geometry = shapely.from_wkb([None if b is None else bytes(b) for b in frame.pop("geom_wkb")])
    return gpd.GeoDataFrame(frame.drop(columns=["geom"]), geometry=geometry, crs="EPSG:4326")


def export_stats(url: str, fmt: str, out: Path) -> ExportReport:
    """gpkg: one file, a layer per view; parquet and csv: a folder, a file per view."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if fmt == "gpkg":
        if out.suffix.lower() != ".gpkg":
            raise InputError(f"--out for gpkg must be a .gpkg file, got {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
    else:
        if out.exists() and not out.is_dir():
            raise InputError(f"--out for {fmt} must be a folder (one file per view), got the file {out}")
        out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    rows: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        for view in VIEWS:
            frame = read_view(conn, view)
            rows[view] = len(frame)
            if fmt == "gpkg":
                # A table without geometry becomes a GeoPackage attribute table.
                pyogrio.write_dataframe(frame, out, layer=view, driver="GPKG")
                if out not in files:
                    files.append(out)
            elif fmt == "parquet":
                path = out / f"{view}.parquet"
                frame.to_parquet(path, index=False)
                files.append(path)
            else:
                path = out / f"{view}.csv"
                if isinstance(frame, gpd.GeoDataFrame):
                    frame = pd.DataFrame(frame.drop(columns="geometry")).assign(
                        geometry=frame.geometry.to_wkt().to_numpy()
                    )
                frame.to_csv(path, index=False)
                files.append(path)
    return ExportReport(files, rows)
