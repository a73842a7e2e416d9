"""Media for ``run.log`` and reading it back.

Logging: ``run.log({"sample": stemma.Image(array, caption="epoch 3")})``, likewise
``stemma.Table``, ``stemma.Plotly``, ``stemma.Html``, and a list of images under one key.
Reading: ``run.history()`` holds reference dicts in media columns; ``load(ref, run=...)``
turns one into the object (a PIL image, a :class:`Table`, a figure dict, a str) and
``load_bytes`` gives the stored bytes. ``Api().run(path).media(key)`` does both steps.
"""

from __future__ import annotations

from stemma.api.media import load, load_bytes
from stemma.sdk.media import Html, Image, Plotly, Table

__all__ = ["Html", "Image", "Plotly", "Table", "load", "load_bytes"]
