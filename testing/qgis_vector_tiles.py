"""Open one of our tile layers in QGIS the ways the README tells, offscreen; print what QGIS saw.

Run by tests/test_qgis_client.py under the system python3 that Debian's python3-qgis
installs into (it is not in the project's venv): `python3 qgis_vector_tiles.py BASE LAYER`.
Prints one JSON object: for the XYZ connection with a style URL, the QML style and the
ArcGIS VectorTileServer connection, whether the layer is valid, its extent in degrees, the
styles its renderer holds, and the colours of a rendered image of the layer's extent.
Imports nothing from streetaudit, so it runs without the project's dependencies.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDataSourceUri,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
    QgsVectorTileLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def uri(**params: str) -> str:
    ds = QgsDataSourceUri()
    for key, value in params.items():
        ds.setParam(key, value)
    return bytes(ds.encodedUri()).decode()


def degrees(layer: QgsVectorTileLayer) -> list[float]:
    to_wgs84 = QgsCoordinateTransform(
        layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance().transformContext()
    )
    box = to_wgs84.transformBoundingBox(layer.extent())
    return [box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()]


def styles(layer: QgsVectorTileLayer) -> list[dict]:
    found = []
    for style in layer.renderer().styles():
        symbol = style.symbol()
        expressions = {}
        if symbol is not None:
            for i in range(symbol.symbolLayerCount()):
                props = symbol.symbolLayer(i).dataDefinedProperties()
                for key in props.propertyKeys():
                    prop = props.property(key)
                    if prop.isActive():
                        expressions[str(key)] = prop.expressionString()
        found.append(
            {
                "name": style.styleName(),
                "layer": style.layerName(),
                "geometry": int(style.geometryType()),
                "enabled": style.isEnabled(),
                "min_zoom": style.minZoomLevel(),
                "expressions": expressions,
            }
        )
    return found


def render_colours(
    layer: QgsVectorTileLayer, west: float, south: float, east: float, north: float
) -> dict[str, int]:
    """Pixel counts per opaque colour of the layer drawn over a box in degrees."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    to_layer = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), QgsProject.instance().transformContext()
    )
    settings.setExtent(to_layer.transformBoundingBox(QgsRectangle(west, south, east, north)))
    settings.setOutputSize(QSize(300, 300))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    counts: dict[str, int] = {}
    for x in range(0, image.width(), 2):
        for y in range(0, image.height(), 2):
            colour = QColor(image.pixel(x, y))
            if QColor.fromRgba(image.pixel(x, y)).alpha() == 255:
                key = colour.name()
                counts[key] = counts.get(key, 0) + 1
    return counts


def default_style(layer: QgsVectorTileLayer) -> tuple[bool, list[str]]:
    """loadDefaultStyle() reads the style URL (or the service's defaultStyles); PyQGIS returns
    its out-parameters, as (message, ok) or (ok, error, warnings) depending on the overload."""
    result = layer.loadDefaultStyle()
    if isinstance(result[0], bool):
        ok, *rest = result
    else:
        message, ok = result
        rest = [message]
    messages = []
    for item in rest:
        messages += list(item) if isinstance(item, (list, tuple)) else [str(item)] if item else []
    return bool(ok), messages


def main(base: str, layer_id: str) -> dict:
    report: dict = {"qgis_version": Qgis.QGIS_VERSION_INT}
    xyz = QgsVectorTileLayer(
        uri(
            type="xyz",
            url=f"{base}/{layer_id}/{{z}}/{{x}}/{{y}}.pbf",
            zmin="0",
            zmax="22",
            styleUrl=f"{base}/style.json",
        ),
        layer_id,
    )
    ok, messages = default_style(xyz) if xyz.isValid() else (False, ["invalid layer"])
    report["xyz"] = {
        "valid": xyz.isValid(),
        "extent": degrees(xyz),
        "style_loaded": ok,
        "style_messages": messages,
        "styles": styles(xyz),
    }

    qml = _download(f"{base}/{layer_id}.qml")
    message, loaded = xyz.loadNamedStyle(qml)
    report["qml"] = {"loaded": loaded, "message": message, "styles": styles(xyz)}

    service = QgsVectorTileLayer(
        uri(type="xyz", serviceType="arcgis", url=f"{base}/{layer_id}/VectorTileServer"), layer_id
    )
    report["arcgis"] = {"valid": service.isValid()}
    if service.isValid():
        ok, messages = default_style(service)
        report["arcgis"] |= {
            "extent": degrees(service),
            "style_loaded": ok,
            "style_messages": messages,
            "styles": styles(service),
        }
        # Where the TileJSON says the data is (QGIS 3.22 reads no fullExtent: the layer's own
        # extent is then the world, where the city is a few pixels).
        bounds = json.load(urllib.request.urlopen(f"{base}/{layer_id}/tilejson.json", timeout=30))["bounds"]
        report["arcgis"]["colours_default_style"] = render_colours(service, *bounds)
        service.loadNamedStyle(qml)
        report["arcgis"]["colours_qml"] = render_colours(service, *bounds)
    os.unlink(qml)

    project_file = _download(f"{base}/project.qgs")
    project = QgsProject.instance()
    read = project.read(project_file)
    os.unlink(project_file)
    view = project.viewSettings().defaultViewExtent()
    to_wgs84 = QgsCoordinateTransform(
        view.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), project.transformContext()
    )
    box = to_wgs84.transformBoundingBox(view)
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    report["project"] = {
        "read": read,
        "view": [box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()],
        "layers": {
            name: {"valid": layer.isValid(), "styles": styles(layer)} for name, layer in layers.items()
        },
    }
    if layer_id in layers:
        report["project"]["colours"] = render_colours(layers[layer_id], *report["project"]["view"])
    return report


def _download(url: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".qml", delete=False) as f:
        f.write(urllib.request.urlopen(url, timeout=30).read())
    return f.name


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    result = main(sys.argv[1], sys.argv[2])
    print(json.dumps(result))
    app.exitQgis()
