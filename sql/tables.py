"""SQLModel + GeoAlchemy2 mappings of the core tables, for Python users of the database.

The schema itself is defined by the SQL migrations; these classes only mirror it (a test
checks they agree), so notebooks and scripts can query with SQLAlchemy and get shapely
geometries via `geoalchemy2.shape.to_shape`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import Column
from sqlmodel import Field, SQLModel

SCHEMA = {"schema": "streetaudit"}


class Road(SQLModel, table=True):
    __tablename__ = "road"
    __table_args__ = SCHEMA

    id: int | None = Field(default=None, primary_key=True)
    source: str
    source_id: str
    name: str | None = None
    kind: str | None = None
    geom: Any = Field(
        sa_column=Column(Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=False)
    )
    length_m: float
    loaded_at: datetime | None = None


class HeritageArea(SQLModel, table=True):
    __tablename__ = "heritage_area"
    __table_args__ = SCHEMA

    id: int | None = Field(default=None, primary_key=True)
    source: str
    source_id: str
    name: str
    kind: str = "core"
    geom: Any = Field(
        sa_column=Column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)
    )
    area_m2: float
    loaded_at: datetime | None = None


class SamplePoint(SQLModel, table=True):
    __tablename__ = "sample_point"
    __table_args__ = SCHEMA

    id: int | None = Field(default=None, primary_key=True)
    road_id: int = Field(foreign_key="streetaudit.road.id")
    seq: int
    distance_m: float
    geom: Any = Field(sa_column=Column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False))
    retired_at: datetime | None = None  # set by densify instead of deleting; NULL = active


def sqlalchemy_url(libpq_url: str) -> str:
    """SQLAlchemy needs the driver named: postgresql://… → postgresql+psycopg://…"""
    scheme, rest = libpq_url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else libpq_url
