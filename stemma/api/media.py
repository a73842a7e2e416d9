"""Reading logged media back: a history reference (or a listed item) -> the object.

``run.history()`` holds media as reference dicts (:mod:`stemma.wire.media`); these
functions fetch what a reference names from the run it was logged to, through the
run's own media route, so reading media needs read access to that run and nothing
more. What comes back:

- an image: a ``PIL.Image.Image``; a list of images: a list of them;
- a table: a :class:`stemma.Table`, whose image cells are :class:`stemma.Image`
  objects that fetch their bytes when first used (``.image`` / ``.to_bytes()``), so a
  table of thousands of images opens without downloading them;
- a plotly figure: its dict (``{"data": [...], "layout": {...}}``);
- HTML: a ``str``.

:func:`load_bytes` gives the stored bytes instead (a list of them for an image list).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stemma.backend.base import Backend
from stemma.errors import NotFound, UsageError
from stemma.wire import media as refs
from stemma.wire.records import RunRef

if TYPE_CHECKING:
    from stemma.api.public import ApiRun


def _resolve(run: Any) -> tuple[Backend, RunRef]:
    from stemma.api.public import Api, ApiRun

    if isinstance(run, ApiRun):
        return run._backend, run.ref
    if isinstance(run, str):
        found = Api().run(run)
        return found._backend, found.ref
    raise UsageError(
        "run must be a run of stemma.Api() (api.run('entity/project/id')) or its path, "
        f"not a {type(run).__name__}"
    )


def _as_ref(ref: Mapping[str, Any]) -> dict[str, Any]:
    """A history reference as it is, or the reference of a listed item."""
    if not isinstance(ref, Mapping):
        raise UsageError(f"expected a media reference dict, got a {type(ref).__name__}")
    if "_type" in ref:
        if not refs.is_ref(dict(ref)):
            raise UsageError(f"not a media reference: _type {ref['_type']!r}")
        return dict(ref)
    if "kind" in ref and "digest" in ref:
        return refs.item_ref(dict(ref))
    raise UsageError("expected a media reference (a history value) or a listed media item")


def load_bytes(ref: Mapping[str, Any], run: ApiRun | str) -> bytes | list[bytes]:
    """The stored bytes of a media reference: exactly what was logged (the PNG of an
    array, an image file's own bytes, a table's or figure's JSON, the HTML). A list of
    images gives a list, one per image."""
    backend, run_ref = _resolve(run)
    r = _as_ref(ref)
    if r["_type"] == refs.IMAGES:
        return [backend.read_media(run_ref, d) for d in refs.ref_digests(r)]
    return backend.read_media(run_ref, r["sha256"])


def load(ref: Mapping[str, Any], run: ApiRun | str) -> Any:
    """The object a media reference stands for (see the module docstring)."""
    backend, run_ref = _resolve(run)
    r = _as_ref(ref)
    type_ = r["_type"]

    def fetch(digest: str) -> bytes:
        return backend.read_media(run_ref, digest)

    if type_ == refs.IMAGE:
        return _pil_image(fetch(r["sha256"]))
    if type_ == refs.IMAGES:
        return [_pil_image(fetch(d)) for d in refs.ref_digests(r)]
    data = fetch(r["sha256"])
    if type_ == refs.TABLE:
        from stemma.sdk.media import Table

        return Table._from_json(data, fetch)
    if type_ == refs.PLOTLY:
        return json.loads(data)
    return data.decode("utf-8", errors="replace")


def _pil_image(data: bytes) -> Any:
    import PIL.Image

    img = PIL.Image.open(io.BytesIO(data))
    img.load()
    return img


def find_item(backend: Backend, run_ref: RunRef, key: str, step: int | None) -> dict[str, Any]:
    """The listed media item of ``key`` at ``step`` (the latest when None)."""
    items = backend.list_media(run_ref, key)
    if step is not None:
        items = [i for i in items if i["step"] == step]
    if not items:
        at = "" if step is None else f" at step {step}"
        raise NotFound(f"run {run_ref.path} has no media {key!r}{at}", key=key)
    return max(items, key=lambda i: int(i["step"]))
