"""Box files as labelling tools write them: Pascal VOC XML (labelImg), YOLO txt + classes.txt,
COCO JSON. Reading gives plain records naming the file and the object/line/annotation number of
each box, so every problem later on can be reported where the user can find it; writing takes
the same records. No database here: flows/annotations.py matches the records to image rows.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from streetaudit.flows.errors import InputError

FORMATS = ("voc", "yolo", "coco")
# The synthetic provider's true boxes beside an image: `123_90.jpg` -> `123_90.boxes.xml` (VOC).
BOXES_SUFFIX = ".boxes.xml"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class Box:
    """One box as the file has it: pixels (x1 y1 x2 y2) or, for YOLO, normalised centre and size
    (cx cy w h, 0..1) until the image size is known."""

    row: int  # VOC object number, YOLO line number, COCO annotation id
    label: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class ImageBoxes:
    """The boxes one annotation file (or one COCO image entry) gives one image."""

    image: str  # the image's file name as the annotation names it (relative path or basename)
    source: str  # the annotation file
    width: int | None = None
    height: int | None = None
    boxes: list[Box] = field(default_factory=list)
    normalised: bool = False  # YOLO: boxes are cx cy w h in 0..1
    image_path: Path | None = None  # the image file itself, when it lies beside the annotation


def _files(path: Path, suffix: str) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    if path.is_file():
        return [path]
    raise InputError(f"{path}: no such file or folder")


def _image_beside(folder: Path, name: str) -> Path | None:
    candidate = folder / name
    if candidate.is_file():
        return candidate
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / (Path(name).stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def _number(element: ET.Element | None, tag: str, where: str) -> float:
    text = element.findtext(tag) if element is not None else None
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{where}: <{tag}> is missing or not a number ({text!r})") from None


def read_voc(path: Path) -> list[ImageBoxes]:
    """labelImg's Pascal VOC: one XML per image, <filename>, <size>, <object><name><bndbox>."""
    out = []
    for xml in _files(path, ".xml"):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as error:
            raise InputError(f"{xml}: not valid XML ({error})") from None
        if root.tag != "annotation":
            raise InputError(f"{xml}: not a Pascal VOC file (root <{root.tag}>, expected <annotation>)")
        name = root.findtext("filename") or xml.with_suffix(".jpg").name
        size = root.find("size")
        width = int(_number(size, "width", f"{xml} <size>")) if size is not None else None
        height = int(_number(size, "height", f"{xml} <size>")) if size is not None else None
        item = ImageBoxes(
            name, str(xml), width or None, height or None, image_path=_image_beside(xml.parent, name)
        )
        for number, obj in enumerate(root.findall("object"), start=1):
            where = f"{xml} object {number}"
            box = obj.find("bndbox")
            item.boxes.append(
                Box(
                    number,
                    (obj.findtext("name") or "").strip(),
                    _number(box, "xmin", where),
                    _number(box, "ymin", where),
                    _number(box, "xmax", where),
                    _number(box, "ymax", where),
                )
            )
        out.append(item)
    return out


def read_yolo(path: Path) -> list[ImageBoxes]:
    """YOLO: one `IMAGESTEM.txt` per image, lines `class cx cy w h` (normalised), and classes.txt
    (one name a line) in the folder or the one above it."""
    if not path.is_dir():
        raise InputError(f"{path}: YOLO labels are a folder of .txt files with classes.txt")
    classes_file = next((p for p in (path / "classes.txt", path.parent / "classes.txt") if p.is_file()), None)
    if classes_file is None:
        raise InputError(f"{path}: classes.txt not found (one label name per line, line n = class n)")
    classes = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
    out = []
    for txt in _files(path, ".txt"):
        if txt.name == "classes.txt":
            continue
        image_path = _image_beside(txt.parent, txt.stem)
        item = ImageBoxes(
            image_path.name if image_path else txt.stem, str(txt), normalised=True, image_path=image_path
        )
        for number, line in enumerate(txt.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            where = f"{txt} line {number}"
            if len(parts) != 5:
                raise InputError(f"{where}: expected 'class cx cy w h', got {line!r}")
            try:
                cls = int(parts[0])
                cx, cy, w, h = (float(v) for v in parts[1:])
            except ValueError:
                raise InputError(f"{where}: not numbers: {line!r}") from None
            if not 0 <= cls < len(classes):
                raise InputError(f"{where}: class {cls} is not in {classes_file} ({len(classes)} names)")
            item.boxes.append(Box(number, classes[cls], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        out.append(item)
    return out


def read_coco(path: Path) -> list[ImageBoxes]:
    """COCO detection JSON: images (id, file_name, width, height), annotations (id, image_id,
    category_id, bbox = x y w h in pixels), categories (id, name)."""
    out: list[ImageBoxes] = []
    for file in _files(path, ".json"):
        try:
            data = json.loads(file.read_text())
            categories = {c["id"]: c["name"] for c in data.get("categories", [])}
            items = {}
            for image in data["images"]:
                items[image["id"]] = ImageBoxes(
                    image["file_name"],
                    str(file),
                    image.get("width"),
                    image.get("height"),
                    image_path=_image_beside(file.parent, image["file_name"]),
                )
            for number, ann in enumerate(data.get("annotations", []), start=1):
                where = f"{file} annotation {ann.get('id', number)}"
                if ann.get("image_id") not in items:
                    raise InputError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
                if ann.get("category_id") not in categories:
                    raise InputError(
                        f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'"
                    )
                x, y, w, h = (float(v) for v in ann["bbox"])
                items[ann["image_id"]].boxes.append(
                    Box(int(ann.get("id", number)), categories[ann["category_id"]], x, y, x + w, y + h)
                )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{file}: not a COCO detection file ({type(error).__name__}: {error})") from None
        out.extend(items.values())
    return out


def read(path: Path, fmt: str) -> list[ImageBoxes]:
    readers = {"voc": read_voc, "yolo": read_yolo, "coco": read_coco}
    if fmt not in readers:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return readers[fmt](path)


# Writing: each item is (file name, width, height, [(label, x1, y1, x2, y2), …]) in pixels.
Written = tuple[str, int, int, list[tuple[str, float, float, float, float]]]


def voc_xml(name: str, width: int, height: int, boxes, folder: str = "") -> bytes:
    """One image's boxes as labelImg writes them (annotation/filename/size/object/bndbox)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for label, x1, y1, x2, y2 in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = label
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x1), ("ymin", y1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bndbox, tag).text = f"{value:g}"
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


def write_voc(out: Path, items: list[Written]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, width, height, boxes in items:
        path = out / (Path(name).stem + ".xml")
        path.write_bytes(voc_xml(name, width, height, boxes, out.name))
        paths.append(path)
    return paths


def write_yolo(out: Path, items: list[Written], labels: list[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(f"{label}\n" for label in labels))
    index = {label: i for i, label in enumerate(labels)}
    paths = []
    for name, width, height, boxes in items:
        lines = [
            f"{index[label]} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n"
            for label, x1, y1, x2, y2 in boxes
        ]
        path = out / (Path(name).stem + ".txt")
        path.write_text("".join(lines))
        paths.append(path)
    return paths


def write_coco(out: Path, items: list[Written], labels: list[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    category = {label: i for i, label in enumerate(labels, start=1)}
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, (name, width, height, boxes) in enumerate(items, start=1):
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for label, x1, y1, x2, y2 in boxes:
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category[label],
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": label} for label, i in category.items()],
    }
    path = out / "annotations.json"
    path.write_text(json.dumps(data, indent=1))
    return [path]
