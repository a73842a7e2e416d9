"""Media references: what ``run.log`` stores in history for an image, table, figure...

A media value is stored as bytes in the blob store (content-addressed, SHA-256) and as
a small JSON *reference* in the run's history, spelled as W&B spells it::

    {"_type": "image-file", "sha256": "ab12...", "size": 1234, "path": "media/images/ab12....png",
     "format": "png", "width": 64, "height": 48, "caption": "a cat"}
    {"_type": "images/separated", "count": 2, "items": [<image-file>, <image-file>]}
    {"_type": "table-file", "sha256": ..., "size": ..., "path": ..., "ncols": 3, "nrows": 10,
     "images": [{"sha256": ..., "format": "png", "size": ...}]}   # images in its cells
    {"_type": "plotly-file", "sha256": ..., "size": ..., "path": ...}
    {"_type": "html-file", "sha256": ..., "size": ..., "path": ...}

A reference names every blob it needs (a table lists the images in its cells), so the
store can index a run's media, and keep its blobs from gc, without reading any blob.
The SDK writes references; the server checks them (:func:`parse_ref`) before trusting
them, and derives the Content-Type it serves from the kind and a fixed list of image
formats, never from anything the client sent.

Only the standard library here: the SDK imports this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stemma.errors import InvalidValueError

IMAGE = "image-file"
IMAGES = "images/separated"
TABLE = "table-file"
PLOTLY = "plotly-file"
HTML = "html-file"

# reference ``_type`` -> the kind the index and the API use
KIND_OF_TYPE = {IMAGE: "image", IMAGES: "images", TABLE: "table", PLOTLY: "plotly", HTML: "html"}
TYPE_OF_KIND = {kind: type_ for type_, kind in KIND_OF_TYPE.items()}

# Image formats kept as they are (browsers show them all); anything else is re-encoded
# as PNG by the SDK. SVG is deliberately absent: it can carry script.
IMAGE_CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
}
JSON_CONTENT_TYPE = "application/json"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"

# Fields of a reference that are columns of the index rather than its ``meta``.
_TOP_FIELDS = frozenset(("_type", "sha256", "size", "caption"))
_HEX = frozenset("0123456789abcdef")


def is_ref(value: Any) -> bool:
    """Whether a history value is a media reference."""
    return type(value) is dict and value.get("_type") in KIND_OF_TYPE


@dataclasses.dataclass(slots=True)
class MediaItem:
    """One media value of a run, as the index keeps it."""

    key: str
    step: int
    kind: str
    digest: str  # the object's blob (a list's first image)
    size: int  # bytes of the object's blobs (a list: of all its images)
    caption: str | None
    meta: dict[str, Any]
    blobs: dict[str, str]  # every blob it needs -> the Content-Type it is served with


def _bad(key: str, step: int, problem: str) -> InvalidValueError:
    return InvalidValueError(
        f"media value of {key!r} at step {step} is not a valid reference: {problem}",
        key=key,
        step=step,
    )


def _digest(ref: dict[str, Any], key: str, step: int, field: str = "sha256") -> str:
    d = ref.get(field)
    if not (isinstance(d, str) and len(d) == 64 and set(d) <= _HEX):
        raise _bad(key, step, f"{field} must be a SHA-256 hex digest, got {d!r}"[:200])
    return d


def _count(ref: dict[str, Any], field: str, key: str, step: int, required: bool = True) -> int:
    n = ref.get(field)
    if n is None and not required:
        return 0
    if type(n) is not int or n < 0:
        raise _bad(key, step, f"{field} must be a non-negative integer, got {n!r}"[:200])
    return n


def _image_format(ref: dict[str, Any], key: str, step: int) -> str:
    fmt = ref.get("format")
    if fmt not in IMAGE_CONTENT_TYPES:
        raise _bad(
            key, step, f"image format must be one of {sorted(IMAGE_CONTENT_TYPES)}, got {fmt!r}"
        )
    return str(fmt)


def _caption(ref: dict[str, Any], key: str, step: int) -> str | None:
    caption = ref.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise _bad(key, step, "caption must be a string")
    return caption


def parse_ref(key: str, step: int, ref: dict[str, Any]) -> MediaItem:
    """Check a reference logged under ``key`` at ``step`` and describe it for the index.

    Raises InvalidValueError naming the key and step for anything malformed.
    """
    type_ = ref.get("_type")
    kind = KIND_OF_TYPE.get(type_)  # type: ignore[arg-type]
    if kind is None:
        raise _bad(key, step, f"unknown _type {type_!r}")
    meta = {k: v for k, v in ref.items() if k not in _TOP_FIELDS}
    caption = _caption(ref, key, step)
    if kind == "images":
        items = ref.get("items")
        if not isinstance(items, list) or not items:
            raise _bad(key, step, "an image list needs a non-empty list of items")
        blobs: dict[str, str] = {}
        size = 0
        for item in items:
            if not (isinstance(item, dict) and item.get("_type") == IMAGE):
                raise _bad(key, step, "every item of an image list must be an image-file")
            d = _digest(item, key, step)
            blobs[d] = IMAGE_CONTENT_TYPES[_image_format(item, key, step)]
            size += _count(item, "size", key, step)
            _caption(item, key, step)
        first = _digest(items[0], key, step)
        return MediaItem(key, step, kind, first, size, caption, meta, blobs)
    digest = _digest(ref, key, step)
    size = _count(ref, "size", key, step)
    if kind == "image":
        _count(ref, "width", key, step, required=False)
        _count(ref, "height", key, step, required=False)
        blobs = {digest: IMAGE_CONTENT_TYPES[_image_format(ref, key, step)]}
    elif kind == "table":
        _count(ref, "nrows", key, step)
        _count(ref, "ncols", key, step)
        blobs = {digest: JSON_CONTENT_TYPE}
        cells = ref.get("images", [])
        if not isinstance(cells, list):
            raise _bad(key, step, "a table's images must be a list")
        for cell in cells:
            if not isinstance(cell, dict):
                raise _bad(key, step, "a table's images must be a list of references")
            blobs.setdefault(
                _digest(cell, key, step), IMAGE_CONTENT_TYPES[_image_format(cell, key, step)]
            )
    elif kind == "plotly":
        blobs = {digest: JSON_CONTENT_TYPE}
    else:
        blobs = {digest: HTML_CONTENT_TYPE}
    return MediaItem(key, step, kind, digest, size, caption, meta, blobs)


def item_ref(item: dict[str, Any]) -> dict[str, Any]:
    """The history reference of an item :meth:`Backend.list_media` returned."""
    kind = item["kind"]
    ref: dict[str, Any] = {"_type": TYPE_OF_KIND[kind]}
    if kind != "images":
        ref["sha256"] = item["digest"]
        ref["size"] = item["size"]
    ref.update(item.get("meta") or {})
    if item.get("caption") is not None:
        ref["caption"] = item["caption"]
    return ref


def ref_digests(ref: dict[str, Any]) -> list[str]:
    """Every blob digest a (well-formed) reference needs, its own first."""
    if ref.get("_type") == IMAGES:
        return [i["sha256"] for i in ref.get("items") or []]
    out = [ref["sha256"]]
    out.extend(c["sha256"] for c in ref.get("images") or [] if c["sha256"] not in out)
    return out
