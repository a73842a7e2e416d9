"""Media in run.log (Image, lists of images, Table, Plotly, Html): logged online and
offline, read back byte for byte through every store, indexed, served, kept by gc."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import PIL.Image
import plotly.graph_objects as go
import pytest
from click.testing import CliRunner

import stemma
from stemma.cli.main import cli
from stemma.errors import Conflict, InvalidValueError, NotFound
from stemma.sdk import mediastore
from stemma.sdk.spool import spool_files
from stemma.wire.history import encode_rows
from stemma.wire.records import RunRef
from tests.conftest import run_python, store_untouched
from tests.fixtures.s3 import s3_server  # noqa: F401 - the fixture


def _pixels(h: int = 12, w: int = 16, channels: int | None = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(data)))


def _png_ref(data: bytes, width: int = 1, height: int = 1) -> dict[str, Any]:
    return {
        "_type": "image-file",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "path": "media/images/x.png",
        "format": "png",
        "width": width,
        "height": height,
    }


def log_media(store: Any, tmp: Path, path: str) -> str:
    """A finished run with one image at step 0, written through the store's write ops
    (upload, then the frame): returns the image's digest."""
    entity, project, run_id = path.split("/")
    buf = io.BytesIO()
    PIL.Image.fromarray(_pixels(4, 4, seed=len(path))).save(buf, format="PNG")
    f = tmp / f"{run_id}.png"
    f.write_bytes(buf.getvalue())
    digest, _size = store.store_files([(f, None)])[0]
    now = time.time()
    events = [
        {"t": "run", "name": run_id, "config": {}, "tags": [], "created_at": now},
        {"t": "blobs", "digests": [digest]},
        encode_rows([(0, now, 0.0, {"sample": _png_ref(buf.getvalue(), 4, 4)})]) | {"t": "history"},
        {"t": "finish", "state": "finished", "exit_code": 0, "at": now},
    ]
    store.apply(RunRef(entity, project, run_id), f"spool-{run_id}", 0, 100, events)
    return str(digest)


# ------------------------------------------------------------------ round trips


def test_array_images_round_trip(api: stemma.Api) -> None:
    rgb, gray, rgba = _pixels(), _pixels(channels=None, seed=1), _pixels(channels=4, seed=2)
    one = _pixels(channels=1, seed=3)
    floats = np.linspace(0.0, 1.0, 12 * 16 * 3).reshape(12, 16, 3)
    run = stemma.init(project="media")
    images = {
        "rgb": stemma.Image(rgb, caption="epoch 1"),
        "gray": stemma.Image(gray),
        "rgba": stemma.Image(rgba),
        "one": stemma.Image(one),
        "float": stemma.Image(floats),
    }
    run.log({"loss": 0.5, **images})
    run.log({"rgb": stemma.Image(rgb[::-1], caption="epoch 2")})
    run.finish()

    stored = api.run(run.path)
    assert stored.media_bytes("rgb", step=0) == images["rgb"].to_bytes()
    assert np.array_equal(_decode(stored.media_bytes("rgb", step=0)), rgb)  # type: ignore[arg-type]
    assert np.array_equal(np.asarray(stored.media("rgb")), rgb[::-1])  # the latest
    assert np.array_equal(np.asarray(stored.media("gray")), gray)
    assert np.array_equal(np.asarray(stored.media("rgba")), rgba)
    assert np.array_equal(np.asarray(stored.media("one")), one[:, :, 0])
    assert np.array_equal(
        np.asarray(stored.media("float")), (floats * 255).astype(np.int32).astype(np.uint8)
    )
    # history and summary hold W&B-style references
    hist = stored.history()
    first = hist["rgb"].iloc[0]
    assert first["_type"] == "image-file"
    assert (first["width"], first["height"], first["format"]) == (16, 12, "png")
    assert first["caption"] == "epoch 1"
    assert first["sha256"] == images["rgb"].digest
    assert first["size"] == len(images["rgb"].to_bytes())
    assert stored.summary["rgb"]["caption"] == "epoch 2"
    assert stemma.media.load(first, run=stored).size == (16, 12)
    assert stemma.media.load_bytes(first, run="/".join(stored.path)) == images["rgb"].to_bytes()
    # the index lists by key then step, without reading history
    listed = stored.list_media("rgb")
    assert [(m["key"], m["step"], m["kind"], m["caption"]) for m in listed] == [
        ("rgb", 0, "image", "epoch 1"),
        ("rgb", 1, "image", "epoch 2"),
    ]
    assert listed[0]["meta"]["width"] == 16 and listed[0]["digest"] == first["sha256"]
    assert {m["key"] for m in stored.list_media()} == set(images)


def test_image_files_are_kept_byte_for_byte(api: stemma.Api, tmp_path: Path) -> None:
    pixels = _pixels(20, 30)
    files = {}
    for name, fmt in (("a.png", "PNG"), ("b.jpg", "JPEG"), ("c.gif", "GIF")):
        PIL.Image.fromarray(pixels).save(tmp_path / name, format=fmt)
        files[name] = (tmp_path / name).read_bytes()
    tiff = tmp_path / "d.tiff"
    PIL.Image.fromarray(pixels).save(tiff, format="TIFF")
    run = stemma.init(project="media")
    run.log(
        {
            "png": stemma.Image(str(tmp_path / "a.png")),
            "jpg": stemma.Image(tmp_path / "b.jpg"),
            "gif": stemma.Image(tmp_path / "c.gif"),
            "tiff": stemma.Image(tiff),
        }
    )
    run.finish()
    stored = api.run(run.path)
    assert stored.media_bytes("png") == files["a.png"]
    assert stored.media_bytes("jpg") == files["b.jpg"]
    assert stored.media_bytes("gif") == files["c.gif"]
    formats = {m["key"]: m["meta"]["format"] for m in stored.list_media()}
    assert formats == {"png": "png", "jpg": "jpeg", "gif": "gif", "tiff": "png"}
    assert np.array_equal(np.asarray(stored.media("tiff")), pixels)  # re-encoded, same pixels


def test_a_list_of_images_is_one_entry(api: stemma.Api) -> None:
    a, b = _pixels(seed=4), _pixels(8, 8, seed=5)
    run = stemma.init(project="media")
    run.log({"examples": [stemma.Image(a, caption="a"), stemma.Image(b, caption="b")]})
    run.finish()
    stored = api.run(run.path)
    (item,) = stored.list_media("examples")
    assert item["kind"] == "images"
    assert item["meta"]["count"] == 2
    assert [i["caption"] for i in item["meta"]["items"]] == ["a", "b"]
    loaded = stored.media("examples")
    assert [np.asarray(i).shape for i in loaded] == [a.shape, b.shape]
    assert np.array_equal(np.asarray(loaded[1]), b)
    raw = stored.media_bytes("examples")
    assert isinstance(raw, list) and np.array_equal(_decode(raw[0]), a)
    ref = stored.history()["examples"].iloc[0]
    assert ref["_type"] == "images/separated" and len(ref["items"]) == 2


def test_plotly_and_html_round_trip(api: stemma.Api, tmp_path: Path) -> None:
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[2.5, 1.0, 4.0], name="s"))
    fig.update_layout(title="t")
    page = "<html><body><h1>Résumé ✓</h1><script>alert(1)</script></body></html>"
    html_file = tmp_path / "report.html"
    html_file.write_bytes(b"<p>from a file</p>\n")
    run = stemma.init(project="media")
    run.log(
        {
            "fig": stemma.Plotly(fig),
            "dict_fig": stemma.Plotly({"data": [{"x": np.arange(3), "y": [1, math.nan, 3]}]}),
            "page": stemma.Html(page),
            "file_page": stemma.Html(str(html_file)),
            "fh_page": stemma.Html(io.StringIO("<i>stream</i>")),
        }
    )
    run.finish()
    stored = api.run(run.path)
    assert stored.media("fig") == json.loads(json.dumps(fig.to_plotly_json()))
    assert stored.media("dict_fig") == {"data": [{"x": [0, 1, 2], "y": [1, None, 3]}]}
    assert stored.media("page") == page
    assert stored.media_bytes("file_page") == html_file.read_bytes()
    assert stored.media("fh_page") == "<i>stream</i>"
    assert {m["kind"] for m in stored.list_media()} == {"plotly", "html"}


def test_tables_round_trip_with_image_cells(api: stemma.Api) -> None:
    a, b = _pixels(seed=6), _pixels(seed=7)
    table = stemma.Table(columns=["id", "score", "ok", "label", "image"])
    table.add_data(1, 0.5, True, "cat", stemma.Image(a, caption="first"))
    table.add_data(2, math.nan, False, None, stemma.Image(b))
    table.add_data(3, math.inf, None, "dog", None)
    table.add_column("note", ["x", "y", "z"])
    frame = pd.DataFrame({"n": [1, 2], "s": ["p", "q"]})
    run = stemma.init(project="media")
    run.log({"preds": table, "from_df": stemma.Table(dataframe=frame)})
    run.finish()

    stored = api.run(run.path)
    loaded = stored.media("preds")
    assert isinstance(loaded, stemma.Table)
    assert loaded.columns == ["id", "score", "ok", "label", "image", "note"]
    assert loaded.column_types == {
        "id": "number",
        "score": "number",
        "ok": "bool",
        "label": "string",
        "image": "image",
        "note": "string",
    }
    plain = [[c for i, c in enumerate(row) if i != 4] for row in loaded.data]
    assert plain[0] == [1, 0.5, True, "cat", "x"]
    assert math.isnan(plain[1][1]) and plain[1][2:] == [False, None, "y"]
    assert plain[2] == [3, math.inf, None, "dog", "z"]
    cells = loaded.get_column("image")
    assert cells[2] is None
    assert cells[0].caption == "first"
    assert cells[0].to_bytes() == table.data[0][4].to_bytes()  # fetched when asked
    assert np.array_equal(np.asarray(cells[1].image), b)
    df = loaded.get_dataframe()
    assert list(df.columns) == loaded.columns and len(df) == 3
    (item,) = stored.list_media("preds")
    assert (item["meta"]["nrows"], item["meta"]["ncols"]) == (3, 6)
    assert {i["sha256"] for i in item["meta"]["images"]} == {cells[0].digest, cells[1].digest}
    # images of a table are served from the run like any other media blob
    assert _decode(stemma.media.load_bytes(_image_ref(cells[1]), run=stored)).shape == b.shape  # type: ignore[arg-type]
    from_df = stored.media("from_df")
    assert from_df.columns == ["n", "s"] and from_df.data == [[1, "p"], [2, "q"]]
    assert from_df.get_dataframe().equals(frame)


def _image_ref(img: stemma.Image) -> dict[str, Any]:
    return {"_type": "image-file", "sha256": img.digest, "format": img.format, "size": 0}


def test_media_at_explicit_steps(api: stemma.Api) -> None:
    run = stemma.init(project="media")
    for step in (0, 3, 7):
        run.log({"img": stemma.Image(_pixels(seed=step))}, step=step)
        run.log({"loss": float(step)}, step=step)
    run.finish()
    stored = api.run(run.path)
    assert [m["step"] for m in stored.list_media("img")] == [0, 3, 7]
    assert np.array_equal(np.asarray(stored.media("img", step=3)), _pixels(seed=3))
    assert np.array_equal(np.asarray(stored.media("img")), _pixels(seed=7))
    with pytest.raises(NotFound, match="no media 'img' at step 4"):
        stored.media("img", step=4)
    with pytest.raises(NotFound):
        stored.media("nothing")


def test_offline_media_synced_later(store_dir: Path, api: stemma.Api) -> None:
    pixels = _pixels(seed=8)
    run_python("""
        import numpy as np, stemma
        pixels = np.random.default_rng(8).integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        table = stemma.Table(columns=["img"], data=[[stemma.Image(pixels)]])
        run = stemma.init(project="off", id="m1", mode="offline")
        run.log({"img": stemma.Image(pixels), "tab": table, "h": stemma.Html("<b>x</b>")})
        run.finish()
    """)
    assert store_untouched(store_dir)
    (spool,) = spool_files(store_dir / "runs")
    assert (spool.parent / "media" / "blobs").is_dir()  # the bytes wait beside the spool
    result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == 0, result.output
    stored = api.run("off/m1")
    assert np.array_equal(np.asarray(stored.media("img")), pixels)
    assert np.array_equal(np.asarray(stored.media("tab").data[0][0].image), pixels)
    assert stored.media("h") == "<b>x</b>"
    assert not spool.exists() and not (spool.parent / "media").exists()
    again = CliRunner().invoke(cli, ["sync"])
    assert again.exit_code == 0 and len(stored.list_media()) == 3


def test_a_frame_naming_a_blob_the_store_lacks_is_refused_then_healed(
    api: stemma.Api, tmp_path: Path
) -> None:
    """The store never accepts a reference without its bytes: the frame is refused
    with the digests, which the SDK uploads from the run's pending media before it
    sends the frame again (what happens when gc took a blob between the two)."""
    backend = api._backend
    img = stemma.Image(_pixels(seed=9))
    ref = RunRef(backend.default_entity(), "heal", "h1")
    now = time.time()
    events = [
        {"t": "run", "name": "h1", "config": {}, "tags": [], "created_at": now},
        encode_rows([(0, now, 0.0, {"img": img._ref()})]) | {"t": "history"},
    ]
    with pytest.raises(Conflict) as refused:
        backend.apply(ref, "s1", 0, 10, events)
    assert refused.value.context["missing"] == [img.digest]
    assert backend.get_run(ref) is None  # nothing of the frame was applied
    run_dir = tmp_path / "run"
    mediastore.open_store(run_dir).put_chunks([img.to_bytes()], img.digest)
    mediastore.apply_frame(backend, ref, "s1", 0, 10, events, run_dir)
    assert api.run(ref.path).media_bytes("img") == img.to_bytes()
    # bytes neither stored nor pending: a loud error, never a silent loss
    other = stemma.Image(_pixels(seed=10))
    more = [encode_rows([(1, now, 0.0, {"img": other._ref()})]) | {"t": "history"}]
    with pytest.raises(NotFound, match="neither in the store nor in"):
        mediastore.apply_frame(backend, ref, "s1", 10, 20, more, run_dir)


def test_gc_keeps_media_of_live_runs_and_sweeps_deleted_ones(api: stemma.Api) -> None:
    table = stemma.Table(columns=["img"], data=[[stemma.Image(_pixels(seed=11))]])
    run = stemma.init(project="gc")
    run.log(
        {
            "img": stemma.Image(_pixels(seed=12)),
            "list": [stemma.Image(_pixels(seed=13)), stemma.Image(_pixels(seed=14))],
            "tab": table,
            "fig": stemma.Plotly({"data": []}),
        }
    )
    run.finish()
    backend = api._backend
    report = backend.gc(grace_seconds=0)
    assert report["blobs"] == 0
    stored = api.run(run.path)
    assert stored.media("tab").data[0][0].to_bytes() == table.data[0][0].to_bytes()
    assert len(stored.media_bytes("list")) == 2
    stored.delete()
    report = backend.gc(grace_seconds=0)
    assert report["blobs"] == 6  # img, two listed, the table and its image, the figure
    assert backend.gc(grace_seconds=0)["blobs"] == 0


def test_disabled_runs_check_media_and_keep_nothing(store_dir: Path) -> None:
    run = stemma.init(project="media", mode="disabled")
    run.log({"img": stemma.Image(_pixels())})
    with pytest.raises(InvalidValueError):
        run.log({"img": [stemma.Image(_pixels()), 1]})
    run.finish()
    assert not store_dir.exists() or not any(store_dir.rglob("media"))


# ------------------------------------------------------------------ bad input


def test_bad_media_values_are_refused_clearly(tmp_path: Path) -> None:
    cases: list[tuple[Any, str]] = [
        (lambda: stemma.Image(np.zeros((4, 4), dtype=np.int32)), "dtype int32"),
        (lambda: stemma.Image(np.zeros((3, 8, 8), dtype=np.uint8)), r"shape \(3, 8, 8\)"),
        (lambda: stemma.Image(np.zeros((4, 4, 2), dtype=np.uint8)), r"shape \(4, 4, 2\)"),
        (lambda: stemma.Image(np.full((2, 2), np.nan)), "NaN"),
        (lambda: stemma.Image(tmp_path / "missing.png"), "no such file"),
        (lambda: stemma.Image(str(tmp_path)), "cannot read"),
        (lambda: stemma.Image({"not": "an image"}), "not a dict"),
        (lambda: stemma.Image(_pixels(), file_type="svg"), "file_type"),
        (lambda: stemma.Image(_pixels(), mode="NOPE"), "mode 'NOPE'"),
        (lambda: stemma.Plotly(object()), "plotly figure"),
        (lambda: stemma.Plotly({"data": [{"x": object()}]}), r"figure.data\[0\].x is a"),
        (lambda: stemma.Html(tmp_path / "missing.html"), "cannot read"),
        (lambda: stemma.Html(str(tmp_path / "missing.html")), "cannot read"),
        (lambda: stemma.Html(42), "not a int"),
        (lambda: stemma.Table(columns=["a", "b"], data=[[1]]), "1 value.* 2 column"),
        (lambda: stemma.Table(columns=["a"], data=[[{"x": 1}]]), "cannot store dict"),
        (lambda: stemma.Table(columns=["a"], data=[[1], ["x"]]), "holds number values"),
        (lambda: stemma.Table(columns=["a", "a"]), "appears twice"),
    ]
    for make, message in cases:
        with pytest.raises(InvalidValueError, match=message):
            make()
    table = stemma.Table(columns=["a"], data=[[1]])
    with pytest.raises(InvalidValueError, match=r"has 2 value\(s\) but the table has 1 column"):
        table.add_data(1, 2)
    with pytest.raises(InvalidValueError, match="has 2 value"):
        table.add_column("b", [1, 2])
    assert table.columns == ["a"] and table.data == [[1]]  # nothing half-added
    mixed = stemma.Table(columns=["a"], data=[[1], ["x"]], allow_mixed_types=True)
    assert mixed.column_types == {"a": "mixed"}


def test_a_refused_log_call_records_nothing(api: stemma.Api, store_dir: Path) -> None:
    run = stemma.init(project="media")
    with pytest.raises(InvalidValueError, match=r"list of stemma\.Image"):
        run.log({"good": stemma.Image(_pixels()), "bad": [stemma.Image(_pixels()), 3]})
    with pytest.raises(InvalidValueError, match=r"list of stemma\.Image"):
        run.log({"empty": []})
    assert not (run.dir / "media").exists()  # not even the bytes of the good image
    run.log({"x": 1.0})
    run.finish()
    stored = api.run(run.path)
    assert stored.list_media() == []
    columns = set(stored.history().columns)
    assert "x" in columns and not columns & {"good", "bad", "empty"}


# ------------------------------------------------------------------ serving and access


@pytest.mark.server_only
def test_media_route_serves_only_the_runs_blobs_with_safe_headers(api: stemma.Api) -> None:
    base = os.environ["STEMMA_BASE_URL"]
    page = "<script>document.cookie</script>"
    run = stemma.init(project="serve", id="s1")
    run.log({"page": stemma.Html(page), "img": stemma.Image(_pixels()), "fig": stemma.Plotly({})})
    run.finish()
    other = stemma.init(project="serve", id="s2")
    other.log({"img": stemma.Image(_pixels(seed=99))})
    other.finish()
    entity = api.run("serve/s1").entity
    url = f"{base}/api/v1/runs/{entity}/serve"
    items = {m["key"]: m for m in httpx.get(f"{url}/s1/media").json()["media"]}
    assert set(items) == {"page", "img", "fig"}
    assert [
        m["key"] for m in httpx.get(f"{url}/s1/media", params={"key": "img"}).json()["media"]
    ] == ["img"]
    expected = {"page": "text/html", "img": "image/png", "fig": "application/json"}
    for key, content_type in expected.items():
        resp = httpx.get(f"{url}/s1/media/{items[key]['digest']}")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith(content_type)
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert resp.headers["content-security-policy"] == "sandbox"
        assert hashlib.sha256(resp.content).hexdigest() == items[key]["digest"]
    assert httpx.get(f"{url}/s1/media/{items['page']['digest']}").text == page
    # a blob of another run, one of no run, and no digest at all: not found
    theirs = httpx.get(f"{url}/s2/media").json()["media"][0]["digest"]
    for digest in (theirs, "0" * 64, "../../etc/passwd", "zz"):
        resp = httpx.get(f"{url}/s1/media/{digest}")
        assert resp.status_code == 404, digest
        assert resp.json()["code"] == "not_found"
    assert httpx.get(f"{url}/s2/media/{theirs}").status_code == 200


@pytest.mark.embedded_only
def test_media_needs_read_access(store_dir: Path, tmp_path: Path) -> None:
    from tests.fixtures.accounts import as_user, make_user, open_store

    store = open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))
    for name in ("ann", "vic", "out"):
        make_user(store, f"{name}@example.com")
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.add_member("acme", "vic@example.com", "viewer")
    digest = log_media(ann, tmp_path, "acme/vision/m1")
    ref = RunRef("acme", "vision", "m1")
    vic, out = as_user(store, "vic"), as_user(store, "out")
    assert [m["digest"] for m in vic.list_media(ref)] == [digest]
    assert hashlib.sha256(vic.read_media(ref, digest)).hexdigest() == digest
    for call in (lambda: out.list_media(ref), lambda: out.read_media(ref, digest)):
        with pytest.raises(NotFound, match="no project or entity"):
            call()
    store.close()


@pytest.mark.slow
@pytest.mark.postgresql_only  # a server of its own, over this test's database
def test_media_over_an_object_store(
    s3_server: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With S3 behind the server, media bytes go to the bucket and the media route
    streams them back through the server, with its headers (no redirect)."""
    from stemma.backend import reset_backends
    from tests.fixtures.server import ServerProcess

    bucket = s3_server.make_bucket()
    env = {
        "STEMMA_STORAGE_URL": f"s3://{bucket}/blobs",
        "STEMMA_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_REGION": s3_server.region,
    }
    server = ServerProcess(
        tmp_path / "server", database_url=os.environ["STEMMA_DATABASE_URL"], extra_env=env
    ).start()
    try:
        monkeypatch.setenv("STEMMA_BASE_URL", server.url)
        monkeypatch.delenv("STEMMA_DATABASE_URL")
        reset_backends()
        pixels = _pixels(seed=20)
        run = stemma.init(project="s3media", id="r")
        run.log({"img": stemma.Image(pixels), "page": stemma.Html("<b>s3</b>")})
        run.finish()
        stored = stemma.Api().run(run.path)
        assert np.array_equal(np.asarray(stored.media("img")), pixels)
        (page,) = stored.list_media("page")
        resp = httpx.get(f"{server.url}/api/v1/runs/{run.path}/media/{page['digest']}")
        assert resp.status_code == 200 and resp.text == "<b>s3</b>"
        assert resp.headers["content-security-policy"] == "sandbox"
        assert resp.headers["content-type"].startswith("text/html")
        keys = s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        assert len(keys) == 2
    finally:
        server.stop()
