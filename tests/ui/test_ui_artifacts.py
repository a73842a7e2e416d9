"""Artifact pages: the project's artifacts, one artifact, one version (files, download,
aliases and their rules), the lineage graph, the diff, and what a viewer may not do.

One small pipeline is logged through the SDK over HTTP by a team member: run ``prep``
logs dataset:v0 (a CSV, a text file, a binary file and a file whose name is markup), run
``train`` uses it and logs model:v0, run ``refresh`` logs dataset:v1 with one CSV row
changed. ``production`` is protected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

import stemma
from stemma.wire.manifest import Entry, Manifest
from stemma.wire.records import ArtifactCommit, ArtifactRef, RunRef

pytestmark = pytest.mark.sqlite_only

TEAM = "artteam"
PROJECT = "pipeline"
BASE = f"/p/{TEAM}/{PROJECT}/artifacts"
XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=1</script>"
CSV_V0 = "id,label,score\n1,cat,0.5\n2,dog,0.7\n3,bird,0.9\n"
CSV_V1 = "id,label,score\n1,cat,0.5\n2,wolf,0.75\n3,bird,0.9\n"


@pytest.fixture(scope="module")
def pipe(ui: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    people = {
        "mem": ui.user("mem-art@example.com"),
        "boss": ui.user("boss-art@example.com"),
        "vic": ui.user("vic-art@example.com"),
        "out": ui.user("out-art@example.com"),
    }
    ui.store.create_team(TEAM)
    ui.store.add_member(TEAM, "mem-art@example.com", "member")
    ui.store.add_member(TEAM, "boss-art@example.com", "admin")
    ui.store.add_member(TEAM, "vic-art@example.com", "viewer")

    src = tmp_path_factory.mktemp("art-src")
    data = src / "data"
    (data / "images").mkdir(parents=True)
    (data / "train.csv").write_text(CSV_V0)
    (data / "notes.txt").write_text(f"line one\n{XSS_SCRIPT}\n")
    (data / "images" / "a.bin").write_bytes(os.urandom(3000) + b"\x00")
    (data / "images" / "big.bin").write_bytes(os.urandom(5 << 20))  # stored as chunks
    odd = src / "odd.txt"
    odd.write_text("a file with a markup name\n")
    out: dict[str, Any] = {"src": src, **people}

    with ui.sdk(people["mem"]):
        prep = stemma.init(entity=TEAM, project=PROJECT, name="prep", job_type="prep")
        art = stemma.Artifact(
            "dataset",
            type="dataset",
            description=f"Labelled pets {XSS_IMG}",
            metadata={"rows": 3, "note": XSS_SCRIPT},
        )
        art.add_dir(str(data), name="data")
        art.add_file(str(odd), name=XSS_IMG + ".txt")
        prep.log_artifact(art, aliases=["staging"])
        prep.finish()
        out["prep"] = prep.id

        train = stemma.init(entity=TEAM, project=PROJECT, name=f"train {XSS_IMG}", job_type="train")
        train.use_artifact("dataset:v0")
        model_file = src / "model.pt"
        model_file.write_bytes(b"weights" * 100)
        model = stemma.Artifact("model", type="model", metadata={"acc": 0.91})
        model.add_file(str(model_file))
        train.log_artifact(model)
        train.finish()
        out["train"] = train.id

        (data / "train.csv").write_text(CSV_V1)
        (data / "notes.txt").write_text(f"line one\n{XSS_SCRIPT}\nline two\n")
        refresh = stemma.init(entity=TEAM, project=PROJECT, name="refresh", job_type="prep")
        art2 = stemma.Artifact("dataset", type="dataset", metadata={"rows": 3, "fixed": True})
        art2.add_dir(str(data), name="data")
        refresh.log_artifact(art2)
        refresh.finish()
        out["refresh"] = refresh.id

    ui.store.set_protected_aliases(TEAM, PROJECT, ["production"])
    ui.store.update_artifact(
        ui.store.get_artifact(TEAM, PROJECT, "dataset", "v0", with_manifest=False).ref,
        {"aliases": ["staging", "production"]},
    )
    return out


def aliases_of(ui: Any, version: str) -> list[str]:
    return ui.store.get_artifact(TEAM, PROJECT, "dataset", version, with_manifest=False).aliases


def texts(locator: Any) -> list[str]:
    return [locator.nth(i).inner_text() for i in range(locator.count())]


def test_artifacts_list_grouped_by_type_with_filter(ui, pipe, signed_in, shot) -> None:
    page = signed_in(pipe["mem"])
    page.goto(BASE)
    assert page.title() == f"Artifacts · {TEAM}/{PROJECT} · Stemma"
    assert page.locator("nav.tabs a[aria-current=page]").inner_text() == "Artifacts"
    assert texts(page.locator("section.art-type h2")) == ["dataset 1 artifact", "model 1 artifact"]
    row = page.locator("tr", has=page.get_by_role("link", name="dataset", exact=True))
    cells = texts(row.locator("td"))
    assert cells[1] == "2" and cells[2] == "v1"
    assert "staging" in cells[3] and "production" in cells[3]
    assert row.locator(".alias.protected").inner_text().strip().startswith("production")
    shot(page, "artifacts-list")

    page.select_option("#type-filter", "model")  # submits itself
    page.wait_for_url(re.compile(r"type=model"))
    assert texts(page.locator("section.art-type h2")) == ["model 1 artifact"]
    assert page.errors == []

    page.goto(f"/p/{TEAM}/{PROJECT}/artifacts?type=nothing")
    assert "No artifacts of type" in page.locator("main").inner_text()


def test_collection_page_lists_versions_and_alias_history(ui, pipe, signed_in, shot) -> None:
    page = signed_in(pipe["mem"])
    page.goto(f"{BASE}/dataset")
    assert page.title() == f"dataset · artifacts · {TEAM}/{PROJECT} · Stemma"
    crumbs = texts(page.locator("nav.crumbs > *"))
    assert crumbs == [TEAM, PROJECT, "artifacts", "dataset"]
    rows = page.locator("#versions + .table-wrap tbody tr")
    assert [r.split("\t")[0] for r in texts(rows)] == ["v1", "v0"]
    v0 = rows.nth(1)
    assert "production" in v0.inner_text() and "staging" in v0.inner_text()
    creator = v0.get_by_role("link", name=pipe["prep"])
    assert creator.get_attribute("href") == f"/p/{TEAM}/{PROJECT}/r/{pipe['prep']}"
    history = page.locator("#alias-history ~ .table-wrap tbody tr")
    assert any("production" in t and "set" in t for t in texts(history))
    # What did production point at a moment ago?
    page.fill("#asof-alias", "production")
    page.fill("#asof-at", "2999-01-01T00:00:00")
    page.get_by_role("button", name="What did it point at?").click()
    assert "pointed at v0" in page.locator(".as-of").inner_text()
    assert page.errors == []
    shot(page, "artifact-collection")


def test_version_page_files_download_and_view(ui, pipe, signed_in, shot) -> None:
    page = signed_in(pipe["mem"])
    page.goto(f"{BASE}/dataset/v0")
    assert page.title() == f"dataset:v0 · {TEAM}/{PROJECT} · Stemma"
    files = page.locator("table.files tbody tr")
    assert texts(files.locator("td:first-child")) == ["▸ data/", XSS_IMG + ".txt"]
    assert page.locator("#lineage-graph svg a").count() == 4  # one run each way
    shot(page, "artifact-version")

    page.get_by_role("link", name="data/", exact=True).click()
    page.wait_for_url(re.compile(r"dir=data"))
    names = texts(page.locator("table.files tbody td:first-child"))
    assert names == ["▸ images/", "notes.txt", "train.csv"]
    with page.expect_download() as info:
        page.get_by_role("link", name="Download data/train.csv").click()
    download = info.value
    assert download.suggested_filename == "train.csv"
    assert Path(download.path()).read_bytes() == CSV_V0.encode()

    page.get_by_role("link", name="images/", exact=True).click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download data/images/a.bin").click()
    blob = Path(info.value.path()).read_bytes()
    assert blob == (pipe["src"] / "data" / "images" / "a.bin").read_bytes()
    assert page.get_by_role("link", name="a.bin", exact=True).count() == 0  # binary: no view page
    with page.expect_download() as info:  # a file stored as chunks, reassembled
        page.get_by_role("link", name="Download data/images/big.bin").click()
    big = Path(info.value.path()).read_bytes()
    assert big == (pipe["src"] / "data" / "images" / "big.bin").read_bytes()

    page.goto(f"{BASE}/dataset/v0?dir=data")
    page.get_by_role("link", name="notes.txt", exact=True).click()
    assert page.locator("pre.file-view").inner_text() == f"line one\n{XSS_SCRIPT}\n"
    shot(page, "artifact-file-text")
    page.goto(f"{BASE}/dataset/v0/view/data/train.csv")
    header = texts(page.locator(".file-table thead th"))
    assert header == ["#", "id", "label", "score"]
    assert page.locator(".file-table tbody tr").count() == 3
    shot(page, "artifact-file-csv")
    assert page.evaluate("window.__xss") is None
    assert page.errors == []

    # The download route answers an attachment that never runs in our origin.
    response = page.request.get(f"{BASE}/dataset/v0/files/data/notes.txt")
    assert response.status == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-security-policy"] == "sandbox"
    missing = page.request.get(f"{BASE}/dataset/v0/files/data/nope.txt")
    assert missing.status == 404


def test_member_moves_aliases_but_not_protected_ones(ui, pipe, signed_in, shot) -> None:
    page = signed_in(pipe["mem"])
    page.goto(f"{BASE}/dataset/v1")
    page.fill("#alias-input", "staging")
    page.get_by_role("button", name="Point at v1").click()
    assert "staging now points at dataset:v1 (moved from v0)" in page.locator(".flash").inner_text()
    assert any("staging" in t for t in texts(page.locator("ul.alias-list li")))
    assert "staging" in aliases_of(ui, "v1") and "staging" not in aliases_of(ui, "v0")

    # A protected alias: refused on the page, with the way forward; nothing changes.
    page.fill("#alias-input", "production")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Point at v1").click()
    assert answer.value.status == 403
    alert = page.get_by_role("alert")
    assert "'production' is protected" in alert.inner_text()
    assert "Nothing was changed" in alert.inner_text()
    assert aliases_of(ui, "v0").count("production") == 1
    assert "production" not in aliases_of(ui, "v1")
    assert page.locator("details#promotion").get_attribute("open") is not None
    shot(page, "artifact-alias-refused")

    # ... so the member asks for it instead.
    assert page.locator("#promote-alias").input_value() == "production"
    page.fill("#promote-comment", "passes the eval suite")
    page.get_by_role("button", name="Request promotion to v1").click()
    assert "Requested production → dataset:v1" in page.locator(".flash").inner_text()
    pending = ui.store.list_promotions(TEAM, PROJECT, "dataset")
    assert [(p["alias"], p["version"], p["requested_by"]) for p in pending] == [
        ("production", "v1", "mem-art")
    ]
    assert "Pending requests for v1" in page.locator("#aliases").inner_text()

    # A team admin moves it.
    boss = signed_in(pipe["boss"])
    boss.goto(f"{BASE}/dataset/v1")
    assert "you are a team admin" in boss.locator("#aliases").inner_text()
    boss.fill("#alias-input", "production")
    boss.get_by_role("button", name="Point at v1").click()
    assert (
        "production now points at dataset:v1 (moved from v0)" in boss.locator(".flash").inner_text()
    )
    assert "production" in aliases_of(ui, "v1") and "production" not in aliases_of(ui, "v0")
    # and may remove it (no confirmation dialog in this test).
    boss.locator("form", has=boss.get_by_role("button", name="Remove alias production")).evaluate(
        "f => f.removeAttribute('data-confirm')"
    )
    boss.get_by_role("button", name="Remove alias production").click()
    assert "Removed production from dataset:v1" in boss.locator(".flash").inner_text()
    assert "production" not in aliases_of(ui, "v1")
    boss.goto(f"{BASE}/dataset")
    history = texts(boss.locator("#alias-history ~ .table-wrap tbody tr"))
    assert any("production" in h and "requested" in h for h in history)
    assert any("production" in h and "removed" in h for h in history)
    # The refusal is a 403 page, which the browser logs; nothing else may be.
    assert [e for e in page.errors if "status of 403" not in e] == []
    assert boss.errors == []
    shot(boss, "artifact-collection-history")


def test_viewer_sees_no_alias_forms_and_is_refused(ui, pipe, signed_in) -> None:
    page = signed_in(pipe["vic"])
    page.goto(f"{BASE}/dataset/v0")
    assert page.locator("form[action$='/aliases']").count() == 0
    assert page.locator("form[action$='/aliases/remove']").count() == 0
    assert page.locator("form[action$='/promotion']").count() == 0
    before = aliases_of(ui, "v0")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    for path, form in (
        ("aliases", {"alias": "hacked"}),
        ("aliases/remove", {"alias": "staging"}),
        ("promotion", {"alias": "production"}),
    ):
        response = page.request.post(
            f"{BASE}/dataset/v0/{path}", form={"csrf_token": token, **form}
        )
        assert response.status == 403, path
    assert aliases_of(ui, "v0") == before
    # Someone outside the team cannot read the pages nor download a file.
    outsider = signed_in(pipe["out"])
    for path in (BASE, f"{BASE}/dataset/v0", f"{BASE}/dataset/v0/files/data/train.csv"):
        assert outsider.goto(path).status in (403, 404), path
        assert "label,score" not in outsider.content()
    # Without the token the form is refused before the store is asked.
    response = page.request.post(f"{BASE}/dataset/v0/aliases", form={"alias": "x"})
    assert response.status == 403
    assert aliases_of(ui, "v0") == before


def test_lineage_graph_nodes_edges_and_clicks(ui, pipe, signed_in, shot) -> None:
    page = signed_in(pipe["mem"])
    page.goto(f"{BASE}/dataset/v0/lineage?depth=2")
    assert page.title() == f"Lineage of dataset:v0 · {TEAM}/{PROJECT} · Stemma"
    svg = page.locator("#lineage-graph svg.lineage")
    svg.wait_for()
    ds0 = f"artifact:{TEAM}/{PROJECT}/dataset:v0"
    model = f"artifact:{TEAM}/{PROJECT}/model:v0"
    prep = f"run:{TEAM}/{PROJECT}/{pipe['prep']}"
    train = f"run:{TEAM}/{PROJECT}/{pipe['train']}"
    ids = sorted(svg.locator("a[data-id]").evaluate_all("els => els.map(e => e.dataset.id)"))
    assert ids == sorted([ds0, model, prep, train])
    edges = svg.locator("path.edge").evaluate_all(
        "els => els.map(e => [e.dataset.source, e.dataset.target])"
    )
    assert sorted(edges) == sorted([[prep, ds0], [ds0, train], [train, model]])
    focus = svg.locator("a.focus")
    assert focus.get_attribute("data-id") == ds0 and focus.get_attribute("aria-current") == "page"
    # Laid out left to right along the data flow, labels apart.
    boxes = {i: svg.locator(f"a[data-id='{i}']").bounding_box() for i in ids}
    assert boxes[prep]["x"] < boxes[ds0]["x"] < boxes[train]["x"] < boxes[model]["x"]
    # The run's name is markup: drawn as text.
    assert XSS_IMG in svg.locator(f"a[data-id='{train}']").get_attribute("aria-label")
    assert page.evaluate("window.__xss") is None
    shot(page, "artifact-lineage")

    # Keyboard: nodes are links reached by Tab, left to right; Enter follows one.
    page.get_by_role("button", name="Show").focus()
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.dataset.id"))
    assert order == [prep, ds0, train, model]
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/artifacts/model/v0/lineage\?depth=2&direction=both$"))
    assert page.locator("svg.lineage a.focus").get_attribute("data-id") == model

    # Clicking a run goes to the run's page.
    with page.expect_navigation():
        page.locator(f"svg.lineage a[data-id='{train}']").click()
    assert unquote(page.url).endswith(f"/p/{TEAM}/{PROJECT}/r/{pipe['train']}")

    page.goto(f"{BASE}/dataset/v0/lineage?depth=1&direction=upstream")
    assert page.locator("#depth").input_value() == "1"
    ids = page.locator("svg.lineage a[data-id]").evaluate_all("els => els.map(e => e.dataset.id)")
    assert sorted(ids) == sorted([ds0, prep])
    assert page.errors == []


def commit_file(store: Any, project: str, name: str, data: bytes, tmp: Path, run: Any = None):
    """A one-file version committed straight into the store (fast, in-process)."""
    path = tmp / f"{name}.txt"
    path.write_bytes(data)
    [(digest, size)] = store.store_files([(path, None)])
    record, _ = store.commit_artifact(
        ArtifactCommit(
            entity=TEAM,
            project=project,
            name=name,
            type="dataset" if name.startswith("in") else "model",
            description=None,
            metadata={},
            manifest=Manifest([Entry("f.txt", digest, size)]),
            aliases=[],
            ttl_seconds=None,
            run=run,
            creator={},
        )
    )
    return record


def test_wide_lineage_graph_stays_readable_and_quick(ui, pipe, signed_in, shot) -> None:
    """A run ``gen`` logs 100 versions that a run ``fan`` uses to log one: 103 nodes from
    the store; then 300 drawn from made-up data, timed."""
    with ui.sdk(pipe["mem"]):
        gen = stemma.init(entity=TEAM, project="wide", name="gen", job_type="gen")
        gen.finish()
        fan = stemma.init(entity=TEAM, project="wide", name="fan", job_type="fan")
        fan.finish()
    tmp = pipe["src"] / "wide"
    tmp.mkdir()
    gen_ref = RunRef(TEAM, "wide", gen.id)
    fan_ref = RunRef(TEAM, "wide", fan.id)
    for i in range(100):
        rec = commit_file(ui.store, "wide", f"in{i:03d}", str(i).encode(), tmp, gen_ref)
        ui.store.use_artifact(fan_ref, rec.ref)
    commit_file(ui.store, "wide", "out", b"out", tmp, fan_ref)

    page = signed_in(pipe["mem"])
    page.goto(f"/p/{TEAM}/wide/artifacts/out/v0/lineage?depth=2")
    svg = page.locator("svg.lineage")
    svg.wait_for()
    assert svg.locator("a[data-id]").count() == 103
    assert svg.locator("path.edge").count() == 201
    boxes = svg.locator("a[data-id]").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom]; })"
    )
    assert not overlapping(boxes)
    assert len({round(b[0]) for b in boxes}) == 4  # gen | 100 versions | fan | out
    shot(page, "artifact-lineage-wide")

    # 300 nodes, 400 edges: every node laid out without overlaps (how fast is not asserted
    # here: tests do not time things; the elapsed milliseconds are printed for a reader).
    elapsed, boxes = page.evaluate(
        """() => {
          const nodes = [], edges = [];
          for (let i = 0; i < 100; i++) {
            nodes.push({id: 'r' + i, kind: 'run', label: 'run ' + i, href: '#r' + i});
            nodes.push({id: 'a' + i, kind: 'artifact', label: 'data:v' + i, href: '#a' + i});
            nodes.push({id: 'b' + i, kind: 'artifact', label: 'model:v' + i, href: '#b' + i});
            edges.push({source: 'a' + i, target: 'r' + i}, {source: 'r' + i, target: 'b' + i});
            edges.push({source: 'b' + i, target: 'r' + ((i * 7 + 3) % 100)});
            edges.push({source: 'a' + ((i * 13) % 100), target: 'r' + i});
          }
          nodes[0].focus = true;
          const box = document.getElementById('lineage-graph');
          const t = performance.now();
          Stemma.lineage.draw(box, {nodes, edges});
          const elapsed = performance.now() - t;
          return [elapsed, [...box.querySelectorAll('a[data-id]')].map(e => {
            const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })];
        }"""
    )
    assert len(boxes) == 300
    print(f"drawing 300 nodes took {elapsed:.0f} ms")
    assert not overlapping(boxes)
    assert page.errors == []


def overlapping(boxes: list[list[float]]) -> bool:
    """Whether any two node rectangles overlap (sorted sweep by left edge)."""
    ordered = sorted(boxes)
    for i, (l1, t1, r1, b1) in enumerate(ordered):
        for l2, t2, r2, b2 in ordered[i + 1 :]:
            if l2 >= r1:
                break
            if t1 < b2 and t2 < b1 and l1 < r2:
                return True
    return False


def test_many_versions_references_and_deleted_versions(ui, pipe, signed_in, shot) -> None:
    tmp = pipe["src"] / "many"
    tmp.mkdir()
    for i in range(55):
        commit_file(ui.store, "stock", "many", f"version {i}".encode(), tmp)
    ui.store.delete_artifact(ArtifactRef(TEAM, "stock", "many", 0))
    path = tmp / "local.txt"
    path.write_text("here")
    [(digest, size)] = ui.store.store_files([(path, None)])
    ui.store.commit_artifact(
        ArtifactCommit(
            entity=TEAM,
            project="stock",
            name="refs",
            type="dataset",
            description=None,
            metadata={},
            manifest=Manifest(
                [
                    Entry("local.txt", digest, size),
                    Entry("remote/big.parquet", None, 10_000, "s3://bucket/big.parquet"),
                ]
            ),
            aliases=[],
            ttl_seconds=3600,
            run=None,
            creator={"user": "someone"},
        )
    )

    page = signed_in(pipe["mem"])
    page.goto(f"/p/{TEAM}/stock/artifacts/many")
    assert page.locator(".pager span").inner_text() == "1\u201350 of 54"
    rows = page.locator("#versions + .table-wrap tbody tr")
    assert rows.count() == 50 and rows.first.locator("td").first.inner_text() == "v54"
    page.get_by_role("link", name="Next →").click()
    assert texts(rows.locator("td:first-child")) == ["v4", "v3", "v2", "v1"]
    assert page.locator(".pager span").inner_text() == "51\u201354 of 54"
    shot(page, "artifact-collection-paged")

    page.goto(f"/p/{TEAM}/stock/artifacts/many/v0")
    assert "This version was deleted" in page.locator("main").inner_text()
    assert page.locator("form[action$='/aliases']").count() == 0

    page.goto(f"/p/{TEAM}/stock/artifacts/refs/v0")
    refs = page.locator("#references ~ .table-wrap tbody tr")
    assert texts(refs) == ["remote/big.parquet\ts3://bucket/big.parquet\t9.8 KiB\t"]
    assert "expires in 1 h" in page.locator("table.kv").inner_text()
    assert page.get_by_role("link", name="Download remote/big.parquet").count() == 0
    assert (
        page.request.get(f"/p/{TEAM}/stock/artifacts/refs/v0/files/remote/big.parquet").status
        == 404
    )
    assert page.errors == []
    shot(page, "artifact-version-references")


def test_diff_highlights_the_changed_csv_row(ui, pipe, signed_in, shot) -> None:
    page = signed_in(pipe["mem"])
    page.goto(f"{BASE}/dataset/v1/diff")
    assert page.title() == f"dataset:v1 vs v0 · {TEAM}/{PROJECT} · Stemma"
    assert page.locator("#against").input_value() == "v0"
    files = texts(page.locator("table.diff-files tbody tr"))
    assert [f.split("\t")[:2] for f in files] == [
        ["removed", XSS_IMG + ".txt"],
        ["changed", "data/notes.txt"],
        ["changed", "data/train.csv"],
    ]
    lines = page.locator("pre.diff-lines")
    assert texts(lines.locator(".diff-add")) == ["+line two"]
    assert lines.locator(".diff-del").count() == 0
    assert page.locator("table.diff-files tr.diff-del").count() == 1
    table = page.locator("table.row-diff")
    assert texts(table.locator("thead th"))[1:] == ["id", "label", "score"]
    assert texts(table.locator("tr.diff-del td"))[1:] == ["2", "dog", "0.7"]
    assert texts(table.locator("tr.diff-add td"))[1:] == ["2", "wolf", "0.75"]
    metadata = page.locator("h2:has-text('Metadata') + .table-wrap").inner_text()
    assert "fixed" in metadata and "note" in metadata
    assert page.errors == []
    shot(page, "artifact-diff")

    page.goto(f"{BASE}/dataset/v0/diff")  # v0 has no earlier version: compared with v1
    assert page.locator("#against").input_value() == "v1"
    page.goto(f"{BASE}/model/v0/diff")
    assert "only version" in page.locator(".empty").inner_text()


def test_user_text_renders_as_text(ui, pipe, signed_in) -> None:
    page = signed_in(pipe["mem"])
    page.goto(f"{BASE}/dataset/v0")
    main = page.locator("main").inner_text()
    assert f"Labelled pets {XSS_IMG}" in main
    assert XSS_SCRIPT in page.locator("pre.metadata").inner_text()
    assert XSS_IMG + ".txt" in main
    assert page.locator("main img").count() == 0
    page.get_by_role("link", name=XSS_IMG + ".txt", exact=True).click()
    assert page.locator("h1").inner_text() == XSS_IMG + ".txt"
    page.goto(f"{BASE}/dataset/v0/lineage")
    page.goto(f"{BASE}/dataset")
    page.goto(f"{BASE}/dataset/v1/diff")
    assert page.evaluate("window.__xss") is None
    assert page.errors == []


def test_unknown_names_and_versions_are_404_pages(ui, pipe, signed_in, shot) -> None:
    page = signed_in(pipe["mem"])
    for path in (
        f"{BASE}/nothing",
        f"{BASE}/dataset/v99",
        f"{BASE}/dataset/v99/lineage",
        f"{BASE}/dataset/v0/diff?against=v42",
        f"{BASE}/dataset/nosuchalias",
        f"{BASE}/dataset/v0/view/data/missing.txt",
        f"{BASE}/dataset/v0?dir=nofolder",
    ):
        response = page.goto(path)
        assert response.status == 404, path
        assert page.title() == "Not found · Stemma", path
    shot(page, "artifact-404")
    # An alias in place of a version goes to the version it points at.
    page.goto(f"{BASE}/dataset/latest")
    assert page.url.endswith(f"{BASE}/dataset/v1")


def test_empty_project_and_dark_mode(ui, pipe, browser, shot) -> None:
    with ui.sdk(pipe["mem"]):
        stemma.init(entity=TEAM, project="empty-art", name="nothing").finish()
    context = browser.new_context(
        base_url=ui.url, viewport={"width": 1400, "height": 900}, color_scheme="dark"
    )
    try:
        page = context.new_page()
        from tests.ui.conftest import sign_in

        sign_in(page, ui.url, pipe["mem"]["email"], pipe["mem"]["password"])
        page.goto(f"/p/{TEAM}/empty-art/artifacts")
        assert "No artifacts in this project yet" in page.locator(".empty").inner_text()
        page.goto(f"{BASE}/dataset/v0/lineage")
        page.locator("svg.lineage").wait_for()
        shot(page, "artifact-lineage-dark")
        page.goto(f"{BASE}/dataset/v1/diff")
        shot(page, "artifact-diff-dark")
    finally:
        context.close()
