"""Media for ``run.log``: ``stemma.Image``, ``Table``, ``Plotly`` and ``Html``.

Spelled and called as in W&B. Each object checks and encodes its value when it is made,
so a bad value raises :class:`~stemma.errors.InvalidValueError` there, before anything
is queued; it then holds its bytes and their SHA-256. ``run.log`` asks it for the
reference dict stored in history (``_to_log``, see :mod:`stemma.wire.media`) and for
the blobs that reference needs (``_payloads``), and keeps those beside the spool until
the store has them (:mod:`stemma.sdk.mediastore`).

numpy and Pillow are imported when an image is first made or read, never by
``import stemma``.
"""

from __future__ import annotations

import abc
import datetime as dt
import decimal
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stemma.errors import InvalidValueError
from stemma.wire import media as refs
from stemma.wire.values import from_storable, to_storable

if TYPE_CHECKING:
    import pandas as pd
    import PIL.Image

Payload = tuple[str, bytes]  # (SHA-256 hex, bytes)
Fetch = Callable[[str], bytes]  # digest -> bytes, for media read back from a store

# Pillow's name of a file format -> how the reference spells the formats kept as they are
_KEPT_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "GIF": "gif", "BMP": "bmp"}
_KEPT_FORMATS["WEBP"] = "webp"
# file_type argument -> (reference format, Pillow format name)
_FILE_TYPES = {
    "png": ("png", "PNG"),
    "jpg": ("jpeg", "JPEG"),
    "jpeg": ("jpeg", "JPEG"),
    "gif": ("gif", "GIF"),
    "bmp": ("bmp", "BMP"),
    "webp": ("webp", "WEBP"),
}
# Pillow modes each format can save as they are (others are converted first)
_SAVABLE = {
    "png": {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"},
    "jpeg": {"L", "RGB"},
    "bmp": {"1", "L", "P", "RGB", "RGBA"},
    "webp": {"RGB", "RGBA"},
}
_EXTENSION = {"png": "png", "jpeg": "jpg", "gif": "gif", "bmp": "bmp", "webp": "webp"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical_json(doc: Any) -> bytes:
    """Sorted, compact UTF-8 JSON: equal documents give equal bytes (and one blob)."""
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_caption(caption: Any) -> str | None:
    if caption is None:
        return None
    text = caption if isinstance(caption, str) else str(caption)
    if "\x00" in text:
        raise InvalidValueError("a caption cannot contain a NUL character")
    return text


class Media(abc.ABC):
    """Something ``run.log`` stores as blobs, with a reference dict in history."""

    @abc.abstractmethod
    def _to_log(self, key: str) -> dict[str, Any]:
        """The reference stored in history under ``key``."""

    @abc.abstractmethod
    def _payloads(self) -> list[Payload]:
        """Every blob the reference needs, its own first."""


# ---------------------------------------------------------------------------- images


def _pil() -> Any:
    try:
        import PIL.Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        raise InvalidValueError("stemma.Image needs Pillow: pip install pillow") from None
    return PIL.Image


def _is_pil_image(value: Any) -> bool:
    import sys

    mod = sys.modules.get("PIL.Image")  # not imported: cannot be a PIL image
    return mod is not None and isinstance(value, mod.Image)


def _to_uint8(data: Any) -> Any:
    """Float pixels as W&B scales them: a range with negatives is first stretched to
    [0, 1]; values all within [0, 1] are multiplied by 255 (truncated); then clipped."""
    import numpy as np

    if not np.isfinite(data).all():
        raise InvalidValueError("stemma.Image: the array holds NaN or infinite values")
    if data.min() < 0:
        span = float(np.ptp(data))
        data = (data - data.min()) / (span if span else 1.0)
    if data.max() <= 1.0:
        data = (data * 255).astype(np.int32)
    return np.clip(data, 0, 255).astype(np.uint8)


def _encode(img: Any, fmt: str) -> bytes:
    """``img`` (a PIL image) encoded as ``fmt`` (a reference format)."""
    savable = _SAVABLE.get(fmt)
    if savable is not None and img.mode not in savable:
        alpha = "A" in img.mode or (img.mode == "P" and "transparency" in img.info)
        img = img.convert("RGBA" if alpha and "RGBA" in savable else "RGB")
    buf = io.BytesIO()
    img.save(buf, format=_FILE_TYPES[fmt][1])
    return buf.getvalue()


class Image(Media):
    """An image for ``run.log``: ``stemma.Image(data, caption=None, mode=None,
    file_type=None)``.

    ``data`` is a numpy array (HxW, HxWx1, HxWx3 or HxWx4; uint8, or float scaled to
    0..255 as W&B does), a ``PIL.Image.Image``, or the path of an image file. Arrays and
    PIL images are encoded as PNG (or ``file_type``: jpg, gif, bmp, webp), after
    converting to ``mode`` (a Pillow mode such as ``"L"`` or ``"RGB"``) when given. A
    PNG, JPEG, GIF, BMP or WebP file is kept byte for byte with its own format (``mode``
    and ``file_type`` do not apply to files); other formats Pillow reads become PNG.

    Read back (a table's image cell, see :func:`stemma.media.load`), an Image fetches
    its bytes from the store when first asked: :attr:`image` or :meth:`to_bytes`.
    """

    def __init__(
        self,
        data: Any,
        caption: Any = None,
        mode: str | None = None,
        file_type: str | None = None,
    ) -> None:
        self.caption = _check_caption(caption)
        self._fetch: Callable[[], bytes] | None = None
        self._pil_image: Any = None
        fmt = "png"
        if file_type is not None:
            ft = str(file_type).lower().lstrip(".")
            if ft not in _FILE_TYPES:
                raise InvalidValueError(
                    f"stemma.Image: file_type must be one of {', '.join(_FILE_TYPES)}, "
                    f"got {file_type!r}",
                    file_type=str(file_type),
                )
            fmt = _FILE_TYPES[ft][0]
        if isinstance(data, str | os.PathLike):
            self._from_path(Path(data))
        elif _is_pil_image(data):
            self._from_pil(data, mode, fmt)
        else:
            self._from_array(data, mode, fmt)
        self._digest = _sha256(self._bytes)

    # ---------------------------------------------------------------- making one
    def _from_path(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InvalidValueError(
                f"stemma.Image: no such file {str(path)!r}", path=str(path)
            ) from None
        except OSError as exc:
            raise InvalidValueError(
                f"stemma.Image: cannot read {str(path)!r}: {exc}", path=str(path)
            ) from None
        PILImage = _pil()
        try:
            with PILImage.open(io.BytesIO(raw)) as img:
                self.width, self.height = img.size
                kept = _KEPT_FORMATS.get(img.format or "")
                if kept is not None:
                    self.format, self._bytes = kept, raw
                else:  # a format browsers cannot show (TIFF...): stored as PNG
                    img.load()
                    self.format, self._bytes = "png", _encode(img, "png")
        except (PILImage.UnidentifiedImageError, PILImage.DecompressionBombError) as exc:
            raise InvalidValueError(
                f"stemma.Image: {str(path)!r} is not an image file Pillow can read ({exc})",
                path=str(path),
            ) from None
        except (OSError, ValueError) as exc:
            raise InvalidValueError(
                f"stemma.Image: cannot decode {str(path)!r}: {exc}", path=str(path)
            ) from None

    def _from_pil(self, img: Any, mode: str | None, fmt: str) -> None:
        if mode is not None:
            img = self._convert(img, mode)
        try:
            self._bytes = _encode(img, fmt)
        except (OSError, ValueError) as exc:
            raise InvalidValueError(
                f"stemma.Image: cannot encode a {img.mode} image as {fmt}: {exc}", mode=img.mode
            ) from None
        self.format = fmt
        self.width, self.height = img.size

    def _from_array(self, data: Any, mode: str | None, fmt: str) -> None:
        import numpy as np

        if not isinstance(data, np.ndarray):
            if not hasattr(data, "__array__"):
                raise InvalidValueError(
                    "stemma.Image takes a numpy array, a PIL image or a file path, not a "
                    f"{type(data).__name__}",
                    type=type(data).__name__,
                )
            try:
                data = np.asarray(data)
            except Exception as exc:  # a GPU tensor, for one
                raise InvalidValueError(
                    f"stemma.Image: cannot read a {type(data).__name__} as an array ({exc}); "
                    "pass a numpy array (e.g. tensor.cpu().numpy())",
                    type=type(data).__name__,
                ) from None
        shape = tuple(data.shape)
        if data.ndim == 3 and shape[2] == 1:
            data = data[:, :, 0]
        if not (data.ndim == 2 or (data.ndim == 3 and shape[2] in (3, 4))) or 0 in shape:
            raise InvalidValueError(
                f"stemma.Image takes an array of shape HxW, HxWx1, HxWx3 or HxWx4; got shape "
                f"{shape} (channels-first images need a transpose, e.g. a.transpose(1, 2, 0))",
                shape=list(shape),
            )
        if data.dtype == np.uint8:
            pixels = data
        elif data.dtype.kind == "f":
            pixels = _to_uint8(data)
        else:
            raise InvalidValueError(
                f"stemma.Image takes uint8 arrays (0..255) or float arrays (0..1); got dtype "
                f"{data.dtype} (convert with a.astype('uint8') if the values are 0..255)",
                dtype=str(data.dtype),
            )
        img = _pil().fromarray(np.ascontiguousarray(pixels))
        self._from_pil(img, mode, fmt)

    @staticmethod
    def _convert(img: Any, mode: str) -> Any:
        if img.mode == mode:
            return img
        try:
            return img.convert(mode)
        except (ValueError, OSError) as exc:
            raise InvalidValueError(
                f"stemma.Image: cannot convert a {img.mode} image to mode {mode!r} ({exc})",
                mode=str(mode),
            ) from None

    @classmethod
    def _from_ref(cls, ref: Mapping[str, Any], fetch: Fetch) -> Image:
        """An image read back from a store: bytes fetched when first needed."""
        self = cls.__new__(cls)
        self.caption = ref.get("caption")
        self.format = str(ref.get("format") or "png")
        self.width = int(ref.get("width") or 0)
        self.height = int(ref.get("height") or 0)
        self._digest = str(ref["sha256"])
        self._pil_image = None
        digest = self._digest
        self._fetch = lambda: fetch(digest)
        return self

    # ---------------------------------------------------------------- reading one
    @property
    def digest(self) -> str:
        """SHA-256 of the stored bytes."""
        return self._digest

    def to_bytes(self) -> bytes:
        """The stored bytes: the encoded PNG (or ``file_type``), or the file's own bytes."""
        if not hasattr(self, "_bytes"):
            assert self._fetch is not None
            self._bytes = self._fetch()
        return self._bytes

    @property
    def image(self) -> PIL.Image.Image:
        """The image as a ``PIL.Image.Image`` (decoded once, on first use)."""
        if self._pil_image is None:
            img = _pil().open(io.BytesIO(self.to_bytes()))
            img.load()
            self._pil_image = img
        return self._pil_image

    def __repr__(self) -> str:
        caption = f" caption={self.caption!r}" if self.caption else ""
        return f"<stemma.Image {self.width}x{self.height} {self.format}{caption}>"

    # ---------------------------------------------------------------- logging
    def _ref(self) -> dict[str, Any]:
        ref: dict[str, Any] = {
            "_type": refs.IMAGE,
            "sha256": self._digest,
            "size": len(self.to_bytes()),
            "path": f"media/images/{self._digest[:20]}.{_EXTENSION[self.format]}",
            "format": self.format,
            "width": self.width,
            "height": self.height,
        }
        if self.caption is not None:
            ref["caption"] = self.caption
        return ref

    def _to_log(self, key: str) -> dict[str, Any]:
        return self._ref()

    def _payloads(self) -> list[Payload]:
        return [(self._digest, self.to_bytes())]


def image_list_ref(images: Sequence[Image]) -> dict[str, Any]:
    """The reference of several images logged under one key (W&B's images/separated)."""
    return {"_type": refs.IMAGES, "count": len(images), "items": [i._ref() for i in images]}


# ---------------------------------------------------------------------------- plotly


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON of a figure: numpy values as lists and numbers, dates as ISO strings,
    NaN and infinities as null (gaps, as plotly.js reads them)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _jsonable(float(value), where)
    if hasattr(value, "to_plotly_json"):
        return _jsonable(value.to_plotly_json(), where)
    module = type(value).__module__
    if module.startswith(("numpy", "pandas")) and hasattr(value, "tolist"):
        return _jsonable(value.tolist(), where)
    if module.startswith("numpy") and hasattr(value, "item"):
        return _jsonable(value.item(), where)
    raise InvalidValueError(
        f"stemma.Plotly: the figure is not JSON-serializable: {where} is a {type(value).__name__}",
        where=where[:200],
        type=type(value).__name__,
    )


class Plotly(Media):
    """A plotly figure for ``run.log``: a figure (anything with ``to_plotly_json()``)
    or a dict figure (``{"data": [...], "layout": {...}}``), stored as JSON."""

    def __init__(self, val: Any) -> None:
        if hasattr(val, "to_plotly_json"):
            figure = val.to_plotly_json()
        elif isinstance(val, Mapping):
            figure = val
        else:
            raise InvalidValueError(
                "stemma.Plotly takes a plotly figure (anything with to_plotly_json()) or a "
                f"dict figure, not a {type(val).__name__}",
                type=type(val).__name__,
            )
        self.figure: dict[str, Any] = _jsonable(figure, "figure")
        self._bytes = _canonical_json(self.figure)
        self._digest = _sha256(self._bytes)

    def _to_log(self, key: str) -> dict[str, Any]:
        return {
            "_type": refs.PLOTLY,
            "sha256": self._digest,
            "size": len(self._bytes),
            "path": f"media/plotly/{self._digest[:20]}.plotly.json",
        }

    def _payloads(self) -> list[Payload]:
        return [(self._digest, self._bytes)]


# ---------------------------------------------------------------------------- html


class Html(Media):
    """HTML for ``run.log``: a string of HTML, or the path or open file of an .html
    file, stored as bytes (a string as UTF-8, a file as it is).

    ``inject`` is accepted for W&B compatibility and ignored: nothing is ever added to
    the page. Logged HTML is served only as a sandboxed document (no scripts run).
    """

    def __init__(self, data: Any, inject: bool = False) -> None:
        del inject
        if isinstance(data, os.PathLike) or (isinstance(data, str) and _looks_like_path(data)):
            path = Path(data)
            try:
                self._bytes = path.read_bytes()
            except OSError as exc:
                raise InvalidValueError(
                    f"stemma.Html: cannot read {str(path)!r}: {exc.strerror or exc}",
                    path=str(path),
                ) from None
        elif isinstance(data, str):
            self._bytes = data.encode("utf-8")
        elif hasattr(data, "read"):
            content = data.read()
            if isinstance(content, str):
                content = content.encode("utf-8")
            if not isinstance(content, bytes):
                raise InvalidValueError(
                    f"stemma.Html: the file gave a {type(content).__name__}, not text"
                )
            self._bytes = content
        else:
            raise InvalidValueError(
                "stemma.Html takes a string of HTML or the path or file object of an .html "
                f"file, not a {type(data).__name__}",
                type=type(data).__name__,
            )
        self._digest = _sha256(self._bytes)

    @property
    def html(self) -> str:
        return self._bytes.decode("utf-8", errors="replace")

    def _to_log(self, key: str) -> dict[str, Any]:
        return {
            "_type": refs.HTML,
            "sha256": self._digest,
            "size": len(self._bytes),
            "path": f"media/html/{self._digest[:20]}.html",
        }

    def _payloads(self) -> list[Payload]:
        return [(self._digest, self._bytes)]


def _looks_like_path(text: str) -> bool:
    """A string naming an .html file rather than holding HTML (as W&B tells them apart)."""
    return (
        text.lower().endswith((".html", ".htm"))
        and "<" not in text
        and "\n" not in text
        and len(text) < 4096
    )


# ---------------------------------------------------------------------------- tables

COLUMN_TYPES = ("number", "string", "bool", "image", "none", "mixed")


def _cell(value: Any) -> tuple[Any, str] | None:
    """(the cell as stored, its column type), or None for a value a cell cannot hold."""
    if value is None:
        return None, "none"
    if isinstance(value, bool):
        return bool(value), "bool"
    if isinstance(value, int):
        return int(value), "number"
    if isinstance(value, float):
        return float(value), "number"
    if isinstance(value, str):
        if "\x00" in value:
            return None
        return str(value), "string"
    if isinstance(value, Image):
        return value, "image"
    module = type(value).__module__
    if module.startswith("numpy") and getattr(value, "ndim", 1) == 0 and hasattr(value, "item"):
        return _cell(value.item())
    return None


class Table(Media):
    """A table for ``run.log``: ``stemma.Table(columns=None, data=None, dataframe=None,
    rows=None, allow_mixed_types=False)``.

    Cells are numbers, strings, bools, None or ``stemma.Image`` (each image stored as a
    blob of its own, referenced from the table's JSON). Each column's type is inferred
    from its values (``number``, ``string``, ``bool``, ``image``, or ``none`` while it
    holds only None); a value of another type in a typed column is refused unless
    ``allow_mixed_types`` (the column becomes ``mixed``). ``data`` (or its W&B alias
    ``rows``) is a list of rows or a 2-D numpy array; ``dataframe`` a pandas DataFrame.
    Without ``columns``, a DataFrame's columns are used, else ``"0"``, ``"1"``... (an
    empty table gets W&B's ``Input``, ``Output``, ``Expected``).
    """

    def __init__(
        self,
        columns: Sequence[Any] | None = None,
        data: Any = None,
        dataframe: pd.DataFrame | None = None,
        rows: Any = None,
        allow_mixed_types: bool = False,
    ) -> None:
        if data is not None and rows is not None:
            raise InvalidValueError("stemma.Table: give data or rows (its alias), not both")
        if data is None:
            data = rows
        if dataframe is not None:
            if data is not None:
                raise InvalidValueError("stemma.Table: give data or dataframe, not both")
            if columns is None:
                columns = [str(c) for c in dataframe.columns]
            data = list(dataframe.itertuples(index=False, name=None))
        if data is not None and type(data).__module__.startswith("numpy"):
            if getattr(data, "ndim", 0) != 2:
                raise InvalidValueError(
                    f"stemma.Table: an array of data must be 2-D, got shape {data.shape}"
                )
            data = data.tolist()
        if data is not None and not isinstance(data, Iterable):
            raise InvalidValueError(
                f"stemma.Table: data must be a list of rows, not a {type(data).__name__}"
            )
        row_list: list[list[Any]] = []
        for r in data or []:
            if isinstance(r, str | bytes | Mapping) or not isinstance(r, Iterable):
                raise InvalidValueError(
                    f"stemma.Table: every row must be a list of cells, got a {type(r).__name__}"
                )
            row_list.append(list(r))
        if columns is None:
            columns = (
                [str(i) for i in range(len(row_list[0]))]
                if row_list
                else ["Input", "Output", "Expected"]
            )
        self.columns: list[str] = self._check_columns(columns)
        self.data: list[list[Any]] = []
        self._types = ["none"] * len(self.columns)
        self._allow_mixed = bool(allow_mixed_types)
        self._encoded: Payload | None = None
        for row in row_list:
            self.add_data(*row)

    @staticmethod
    def _check_columns(columns: Sequence[Any]) -> list[str]:
        if isinstance(columns, str) or not isinstance(columns, Iterable):
            raise InvalidValueError("stemma.Table: columns must be a list of names")
        names = [c if isinstance(c, str) else str(c) for c in columns]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise InvalidValueError(f"stemma.Table: column {name!r} appears twice")
            if "\x00" in name:
                raise InvalidValueError("stemma.Table: a column name contains a NUL character")
            seen.add(name)
        return names

    @property
    def column_types(self) -> dict[str, str]:
        """Each column's inferred type (see :data:`COLUMN_TYPES`)."""
        return dict(zip(self.columns, self._types, strict=True))

    def _merge_type(self, col: int, current: str, new: str, row: int) -> str:
        if new == "none" or new == current:
            return current
        if current == "none":
            return new
        if current == "mixed" or self._allow_mixed:
            return "mixed"
        raise InvalidValueError(
            f"stemma.Table: column {self.columns[col]!r} holds {current} values; row {row} "
            f"has a {new} (pass allow_mixed_types=True to allow this)",
            column=self.columns[col],
            row=row,
        )

    def _convert_cell(self, col: int, value: Any, row: int) -> tuple[Any, str]:
        found = _cell(value)
        if found is None:
            what = (
                "a string with a NUL character" if isinstance(value, str) else type(value).__name__
            )
            raise InvalidValueError(
                f"stemma.Table: column {self.columns[col]!r}, row {row}: cannot store {what} "
                "(cells are numbers, strings, bools, None or stemma.Image)",
                column=self.columns[col],
                row=row,
                type=type(value).__name__,
            )
        return found

    def add_data(self, *row: Any) -> None:
        """Append a row (one value per column); nothing changes when it is refused."""
        if len(row) != len(self.columns):
            raise InvalidValueError(
                f"stemma.Table: the row has {len(row)} value(s) but the table has "
                f"{len(self.columns)} column(s) {self.columns}",
                expected=len(self.columns),
                got=len(row),
            )
        index = len(self.data)
        cells: list[Any] = []
        types = list(self._types)
        for col, value in enumerate(row):
            cell, kind = self._convert_cell(col, value, index)
            types[col] = self._merge_type(col, types[col], kind, index)
            cells.append(cell)
        self.data.append(cells)
        self._types = types
        self._encoded = None

    def add_column(self, name: str, data: Sequence[Any]) -> None:
        """Append a column with one value per existing row."""
        if not isinstance(name, str) or not name or "\x00" in name:
            raise InvalidValueError(f"stemma.Table: invalid column name {name!r}")
        if name in self.columns:
            raise InvalidValueError(f"stemma.Table: column {name!r} exists already")
        values = list(data.tolist() if hasattr(data, "tolist") else data)
        if self.columns and len(values) != len(self.data):
            raise InvalidValueError(
                f"stemma.Table: column {name!r} has {len(values)} value(s) but the table "
                f"has {len(self.data)} row(s)",
                expected=len(self.data),
                got=len(values),
            )
        self.columns.append(name)
        col = len(self.columns) - 1
        kind = "none"
        cells = []
        try:
            for i, value in enumerate(values):
                cell, cell_kind = self._convert_cell(col, value, i)
                kind = self._merge_type(col, kind, cell_kind, i)
                cells.append(cell)
        except InvalidValueError:
            self.columns.pop()
            raise
        if not self.data and values:
            self.data = [[] for _ in values]
        for row, cell in zip(self.data, cells, strict=True):
            row.append(cell)
        self._types.append(kind)
        self._encoded = None

    def get_column(self, name: str) -> list[Any]:
        return [row[self.columns.index(name)] for row in self.data]

    def get_dataframe(self) -> pd.DataFrame:
        """The table as a pandas DataFrame (image cells as ``stemma.Image``)."""
        import pandas as pd

        return pd.DataFrame([list(r) for r in self.data], columns=list(self.columns))

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<stemma.Table {len(self.data)} rows x {len(self.columns)} columns>"

    # ---------------------------------------------------------------- storing
    def _images(self) -> list[Image]:
        found: dict[str, Image] = {}
        for row in self.data:
            for cell in row:
                if isinstance(cell, Image):
                    found.setdefault(cell.digest, cell)
        return list(found.values())

    def _encode(self) -> Payload:
        if self._encoded is None:
            doc = {
                "columns": self.columns,
                "column_types": self._types,
                "data": [
                    [
                        c._ref()
                        if isinstance(c, Image)
                        else (to_storable(c) if isinstance(c, float) else c)
                        for c in row
                    ]
                    for row in self.data
                ],
            }
            data = _canonical_json(doc)
            self._encoded = (_sha256(data), data)
        return self._encoded

    def _to_log(self, key: str) -> dict[str, Any]:
        digest, data = self._encode()
        ref: dict[str, Any] = {
            "_type": refs.TABLE,
            "sha256": digest,
            "size": len(data),
            "path": f"media/tables/{digest[:20]}.table.json",
            "ncols": len(self.columns),
            "nrows": len(self.data),
        }
        images = self._images()
        if images:
            ref["images"] = [
                {"sha256": i.digest, "format": i.format, "size": len(i.to_bytes())} for i in images
            ]
        return ref

    def _payloads(self) -> list[Payload]:
        return [self._encode(), *(p for i in self._images() for p in i._payloads())]

    @classmethod
    def _from_json(cls, data: bytes, fetch: Fetch) -> Table:
        """A table read back from a store (image cells fetch their bytes lazily)."""
        doc = json.loads(data)
        table = cls(columns=doc["columns"])
        table._types = list(doc.get("column_types") or ["mixed"] * len(table.columns))
        table.data = [
            [
                Image._from_ref(c, fetch)
                if isinstance(c, dict) and c.get("_type") == refs.IMAGE
                else from_storable(c)
                for c in row
            ]
            for row in doc["data"]
        ]
        return table
