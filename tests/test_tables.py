"""The SQLModel mappings mirror the migrated schema and read real rows."""

from __future__ import annotations

import psycopg
import pytest
from geoalchemy2.shape import to_shape
from sqlalchemy import create_engine
from sqlmodel import Session, select

from streetaudit.sql.tables import HeritageArea, Road, SamplePoint, sqlalchemy_url


@pytest.mark.parametrize("model", [Road, HeritageArea, SamplePoint])
def test_mapping_columns_match_the_database(db: psycopg.Connection, model) -> None:
    table = model.__table__
    columns = {
        r[0]
        for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (table.schema, table.name),
        )
    }
    assert columns == {c.name for c in table.columns}


def test_mappings_read_rows_with_geometries(db_url: str, db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO streetaudit.road (source, source_id, name, geom, length_m) "
        "VALUES ('orm', '1', 'Esplanadi', 'SRID=4326;LINESTRING(24.945 60.167, 24.950 60.1675)', 290)"
    )
    db.execute("SELECT streetaudit.densify_roads(100)")
    engine = create_engine(sqlalchemy_url(db_url))
    with Session(engine) as session:
        road = session.exec(select(Road).where(Road.source == "orm")).one()
        points = session.exec(select(SamplePoint).where(SamplePoint.road_id == road.id)).all()
    engine.dispose()
    assert road.name == "Esplanadi"
    assert to_shape(road.geom).coords[0] == (24.945, 60.167)
    assert sorted(p.seq for p in points) == [0, 1, 2]
    assert to_shape(points[0].geom).geom_type == "Point"
