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
from streetaudit.flows.output_files import staged_file, staged_folder

FORMATS = ("gpkg", "parquet", "csv")
# view -> whether it has a geometry column named geom
VIEWS = {
    "street_stats": True,
    "road_stats": True,
    "area_stats": True,
    "point_elements": True,
    "area_comparison": False,
}


_INTEGER_TYPES = {20, 21, 23}  # int8, int2, int4 (pg_type oids)


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
    assert cur.description is not None  # a SELECT
    columns = [d.name for d in cur.description]
    frame = pd.DataFrame(cur.fetchall(), columns=columns)
    for d in cur.description:
        if d.type_code in _INTEGER_TYPES:
            # pandas makes an integer column with a NULL float (area_stats' `rest` row has no
            # area_id), and CSV would then say 1.0; nullable Int64 keeps 1 and writes NULL empty.
            frame[d.name] = frame[d.name].astype("Int64")
    if not spatial:
        return frame
    geometry = shapely.from_wkb([None if b is None else bytes(b) for b in frame.pop("geom_wkb")])
    return gpd.GeoDataFrame(frame.drop(columns=["geom"]), geometry=geometry, crs="EPSG:4326")


def export_stats(url: str, fmt: str, out: Path) -> ExportReport:
    """gpkg: one file, a layer per view; parquet and csv: a folder, a file per view.

    Written into a staging file or folder and moved into place when complete (output_files).
    """
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if fmt == "gpkg" and out.suffix.lower() != ".gpkg":
        raise InputError(f"--out for gpkg must be a .gpkg file, got {out}")
    if fmt != "gpkg" and out.exists() and not out.is_dir():
        raise InputError(f"--out for {fmt} must be a folder (one file per view), got the file {out}")
    rows: dict[str, int] = {}
    staging = staged_file(out) if fmt == "gpkg" else staged_folder(out)
    with staging as stage, psycopg.connect(url) as conn:
        for view in VIEWS:
            frame = read_view(conn, view)
            rows[view] = len(frame)
            write_view(frame, view, fmt, stage)
    files = [out] if fmt == "gpkg" else [out / f"{view}.{fmt}" for view in VIEWS]
    return ExportReport(files, rows)


def write_view(frame: pd.DataFrame, view: str, fmt: str, stage: Path) -> None:
    if fmt != "parquet":
        # GeoPackage and CSV have no list type: a street's member roads become "3,7,12".
        for column in frame.columns:
            if frame[column].map(lambda v: isinstance(v, list)).any():
                frame[column] = frame[column].map(
                    lambda v: ",".join(map(str, v)) if isinstance(v, list) else v
                )
    if fmt == "gpkg":
        # A table without geometry becomes a GeoPackage attribute table.
        pyogrio.write_dataframe(frame, stage, layer=view, driver="GPKG")
    elif fmt == "parquet":
        frame.to_parquet(stage / f"{view}.parquet", index=False)
    else:
        if isinstance(frame, gpd.GeoDataFrame):
            frame = pd.DataFrame(frame.drop(columns="geometry")).assign(
                geometry=frame.geometry.to_wkt().to_numpy()
            )
        frame.to_csv(stage / f"{view}.csv", index=False)
