"""Load layers with QGIS's own Python API and render each one headless; print the results as JSON.

Runs in Debian's ``/usr/bin/python3`` (``python3-qgis``), not in the project's venv::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis/render.py < layers.json > results.json

stdin is ``{"layers": [...], "size": 256, "images": "<folder or null>"}``; each layer is ``{"name",
"provider": "gdal" | "wms" | "ogr", "kind": "raster" | "vector", "source", "bbox": [w, s, e, n] (lon/lat,
optional: the layer's own extent otherwise)}``. ``wms`` sources are given as a dict of URI parameters
(encoded here with ``QgsDataSourceUri``, as QGIS's own dialogs do). Each result holds ``valid``, ``error``,
``crs``, ``extent``, ``feature_count`` (vector) or ``stats`` (band 1: min, max, mean, count), the rendered
image's ``painted`` fraction (non-transparent pixels) and ``render_errors``. The result also lists every
URL QGIS's network manager asked for (``requests``); requests to any host but 127.0.0.1 are sent to a
closed loopback port instead, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDataSourceUri,
    QgsErrorMessage,
    QgsMapLayer,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsNetworkAccessManager,
    QgsProject,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize, QUrl
from qgis.PyQt.QtGui import QColor, QImage

LOOPBACK = "127.0.0.1"
CLOSED_PORT = 9
"""The discard port on loopback: a request sent there fails at once."""


def keep_on_loopback(requested: list[str]) -> Any:
    """A QGIS request preprocessor recording each URL and redirecting any non-loopback one to a closed port."""

    def preprocess(request: Any) -> None:
        url = request.url()
        requested.append(url.toString())
        if url.host() != LOOPBACK:
            request.setUrl(QUrl(f"http://{LOOPBACK}:{CLOSED_PORT}/blocked"))

    return preprocess


def load(spec: dict[str, Any]) -> QgsMapLayer:
    """The QGIS layer ``spec`` describes (possibly invalid)."""
    source = spec["source"]
    if isinstance(source, dict):
        uri = QgsDataSourceUri()
        for key, value in source.items():
            uri.setParam(key, str(value))
        source = bytes(uri.encodedUri()).decode()
    if spec["kind"] == "vector":
        return QgsVectorLayer(source, spec["name"], spec["provider"])
    return QgsRasterLayer(source, spec["name"], spec["provider"])


def error_text(layer: QgsMapLayer) -> str:
    """The layer's and its provider's error messages (QGIS 3.22's ``QgsError.summary()`` crashes when empty)."""
    provider = layer.dataProvider()
    errors = [layer.error(), *([provider.error()] if provider is not None else [])]
    return " | ".join(error.message(QgsErrorMessage.Text) for error in errors if not error.isEmpty())


def render_extent(layer: QgsMapLayer, bbox: list[float] | None) -> QgsRectangle:
    """``bbox`` (lon/lat) in the layer's CRS, or the layer's own extent."""
    if bbox is None:
        return layer.extent()
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    transform = QgsCoordinateTransform(wgs84, layer.crs(), QgsProject.instance())
    return transform.transformBoundingBox(QgsRectangle(*bbox))


def painted_fraction(image: QImage) -> float:
    """Share of the image's pixels that are not fully transparent (the background is transparent)."""
    image = image.convertToFormat(QImage.Format_ARGB32)
    pixels = image.width() * image.height()
    data = bytes(image.constBits().asstring(image.sizeInBytes()))
    alpha = data[3::4] if sys.byteorder == "little" else data[0::4]
    return (pixels - alpha.count(0)) / pixels


def render(layer: QgsMapLayer, extent: QgsRectangle, size: int) -> tuple[QImage, list[str]]:
    """``layer`` drawn over ``extent`` (in its CRS) on a transparent ``size`` x ``size`` image, and the errors."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    errors = [f"{error.layerID}: {error.message}" for error in job.errors()]
    return job.renderedImage(), errors


def describe(layer: QgsMapLayer, spec: dict[str, Any], size: int, images: Path | None) -> dict[str, Any]:
    """What QGIS made of one layer: validity, contents, and the rendered image."""
    result: dict[str, Any] = {"name": spec["name"], "valid": layer.isValid()}
    if not layer.isValid():
        result["error"] = error_text(layer)
        return result
    extent = render_extent(layer, spec.get("bbox"))
    result["crs"] = layer.crs().authid()
    result["extent"] = [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()]
    if isinstance(layer, QgsVectorLayer):
        result["feature_count"] = layer.featureCount()
        result["fields"] = [field.name() for field in layer.fields()]
    elif spec["provider"] == "gdal":
        stats = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.All, layer.extent(), 0)
        result["stats"] = {"min": stats.minimumValue, "max": stats.maximumValue, "mean": stats.mean}
        result["stats"]["count"] = stats.elementCount
    else:
        result["sublayers"] = layer.dataProvider().subLayers()
    image, errors = render(layer, extent, size)
    result["painted"] = painted_fraction(image)
    result["render_errors"] = errors
    if images is not None:
        image.save(str(images / f"{spec['name']}.png"), "PNG")
    return result


def main() -> None:
    request = json.load(sys.stdin)
    images = Path(request["images"]) if request.get("images") else None
    with tempfile.TemporaryDirectory(prefix="qgis-profile-") as profile:
        app = QgsApplication([], False, profile)
        app.setPrefixPath("/usr", True)
        app.initQgis()
        requested: list[str] = []
        preprocessor = QgsNetworkAccessManager.setRequestPreprocessor(keep_on_loopback(requested))
        layers = [load(spec) for spec in request["layers"]]
        try:
            specs = zip(layers, request["layers"], strict=True)
            results = [describe(layer, spec, request["size"], images) for layer, spec in specs]
        finally:
            layers.clear()  # layers must go before QGIS does (a segfault otherwise)
            QgsNetworkAccessManager.removeRequestPreprocessor(preprocessor)
            app.exitQgis()
    json.dump({"qgis": Qgis.QGIS_VERSION, "layers": results, "requests": requested}, sys.stdout)


if __name__ == "__main__":
    main()
