// The run page: its charts (drawn lazily from the JSON history API, with x-axis choice,
// smoothing, log scale and zoom), its media, and live updates while the run is running.
"use strict";
(function () {
  const SC = window.StemmaCharts;
  const POLL_MS = 5000;
  // Keys that are x axes rather than charts, per stream.
  const X_COLUMNS = {
    default: { _runtime: "_runtime", _timestamp: "_timestamp" },
    system: { _runtime: "system/_runtime", _timestamp: "system/_timestamp" },
  };

  let run = null;
  let base = "";
  const view = { xMode: "step", smoothing: 0, log: false };
  const entries = new Map(); // chart key -> entry
  const xcols = new Map(); // x column key -> {steps, values}

  function historyUrl(keys, params) {
    const q = new URLSearchParams();
    for (const k of keys) q.append("keys", k);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined) q.set(name, String(value));
    }
    return base + "/history?" + q.toString();
  }

  function samplesFor(figure) {
    const plot = figure.querySelector(".chart-plot");
    const width = (plot && plot.clientWidth) || 500;
    return Math.max(250, Math.min(1000, Math.round(width * (window.devicePixelRatio || 1))));
  }

  /** The x column a stream's charts need in the current mode (null: plain steps). */
  function xColumnOf(stream) {
    if (stream === "system") return X_COLUMNS.system[view.xMode === "_timestamp" ? "_timestamp" : "_runtime"];
    return view.xMode === "step" ? null : X_COLUMNS.default[view.xMode];
  }

  function xKindOf(stream) {
    if (view.xMode === "_timestamp") return "time";
    if (stream === "system" || view.xMode === "_runtime") return "runtime";
    return "step";
  }

  function lastOf(col) {
    return col && col.steps.length ? col.steps[col.steps.length - 1] : -1;
  }

  // ---------------------------------------------------------------- drawing

  function draw(entry) {
    const data = entry.zoomData || entry.data;
    if (!data) return;
    if (!data.steps.length) {
      SC.message(entry.figure, "No points in this range.");
      return;
    }
    const xcol = xColumnOf(entry.stream);
    let x = data.steps;
    if (xcol) {
      const col = xcols.get(xcol);
      if (!col || !col.steps.length) {
        SC.message(entry.figure, "This run did not log " + xcol + ": choose another x axis.");
        return;
      }
      x = SC.interpolate(col.steps, col.values, data.steps);
    }
    const y = SC.numbers(data.values);
    if (!entry.chart || entry.chart.plot.querySelector(".chart-message")) {
      if (entry.chart) entry.chart.destroy();
      entry.figure.querySelector(".chart-plot").replaceChildren();
      entry.chart = new SC.Chart(entry.figure, {
        labels: [entry.key],
        xKind: xKindOf(entry.stream),
        smoothing: view.smoothing,
        log: view.log,
        onZoom: (lo, hi) => zoom(entry, lo, hi),
        onReset: () => resetZoom(entry),
      });
    } else {
      entry.chart.opts.xKind = xKindOf(entry.stream);
      entry.chart.opts.smoothing = view.smoothing;
      entry.chart.opts.log = view.log;
    }
    entry.chart.setData(x, [y], entry.zoomX);
    const steps = data.steps;
    entry.figure.dataset.stepMin = String(steps[0]);
    entry.figure.dataset.stepMax = String(steps[steps.length - 1]);
  }

  function fail(figures, error) {
    for (const f of figures) SC.message(f, "Could not load this chart: " + error.message, true);
  }

  /** Load and draw charts (figures of one run) in one request per stream. */
  async function load(figures) {
    const byStream = new Map();
    for (const f of figures) {
      const list = byStream.get(f.dataset.stream) || [];
      list.push(f);
      byStream.set(f.dataset.stream, list);
    }
    await Promise.all(
      Array.from(byStream.entries()).map(async ([stream, list]) => {
        const keys = list.map((f) => f.dataset.key);
        const xcol = xColumnOf(stream);
        if (xcol && !xcols.has(xcol)) keys.push(xcol);
        let body;
        try {
          body = await Stemma.api(historyUrl(keys, { samples: samplesFor(list[0]) }));
        } catch (error) {
          fail(list, error);
          return;
        }
        if (xcol && !xcols.has(xcol)) xcols.set(xcol, body[xcol] || { steps: [], values: [] });
        for (const f of list) {
          const entry = entries.get(f.dataset.key);
          entry.data = body[entry.key] || { steps: [], values: [] };
          entry.samples = samplesFor(f);
          entry.lastStep = lastOf(entry.data);
          draw(entry);
        }
      })
    );
  }

  /** Make sure the x columns the drawn charts need are loaded (after an x-axis change). */
  async function loadXColumns() {
    const needed = new Set();
    for (const e of entries.values()) {
      const c = xColumnOf(e.stream);
      if (e.data && c && !xcols.has(c)) needed.add(c);
    }
    if (!needed.size) return;
    const body = await Stemma.api(historyUrl(Array.from(needed), { samples: 2000 }));
    for (const c of needed) xcols.set(c, body[c] || { steps: [], values: [] });
  }

  /** Steps of the x range [lo, hi] (in the chart's x units). */
  function stepRange(entry, lo, hi) {
    const xcol = xColumnOf(entry.stream);
    if (!xcol) return [Math.floor(lo), Math.ceil(hi)];
    const col = xcols.get(xcol);
    const steps = SC.interpolate(col.values, col.steps, [lo, hi]);
    return [Math.floor(steps[0]), Math.ceil(steps[1])];
  }

  async function zoom(entry, lo, hi) {
    const [minStep, maxStep] = stepRange(entry, lo, hi);
    entry.figure.dataset.loading = "1";
    try {
      const body = await Stemma.api(
        historyUrl([entry.key], { samples: entry.samples, min_step: minStep, max_step: maxStep })
      );
      entry.zoomData = body[entry.key] || { steps: [], values: [] };
      entry.zoomX = [lo, hi];
      draw(entry);
    } catch (error) {
      Stemma.notify("Could not zoom: " + error.message, true);
    } finally {
      delete entry.figure.dataset.loading;
    }
  }

  function resetZoom(entry) {
    if (!entry.zoomData && !entry.zoomX) return;
    entry.zoomData = null;
    entry.zoomX = null;
    draw(entry);
  }

  function redrawAll() {
    for (const e of entries.values()) if (e.data) draw(e);
  }

  function setupControls() {
    const axis = document.getElementById("x-axis");
    if (!axis) return;
    axis.addEventListener("change", async () => {
      view.xMode = axis.value;
      for (const e of entries.values()) {
        e.zoomData = null; // a zoom is a range of the old axis
        e.zoomX = null;
      }
      try {
        await loadXColumns();
      } catch (error) {
        Stemma.notify("Could not load the x axis: " + error.message, true);
      }
      redrawAll();
    });
    SC.bindViewControls(view, function* () {
      for (const e of entries.values()) if (e.chart) yield e.chart;
    });
  }

  function figureFor(key, stream) {
    const fig = document.createElement("figure");
    fig.className = "chart";
    fig.dataset.key = key;
    fig.dataset.stream = stream;
    const h = document.createElement("h3");
    h.textContent = key;
    h.title = key;
    const plot = document.createElement("div");
    plot.className = "chart-plot";
    const readout = document.createElement("figcaption");
    readout.className = "chart-readout small";
    fig.append(h, plot, readout);
    return fig;
  }

  /** A chart for a key that appeared while the page was open (live runs). */
  function addChart(key, stream) {
    const group = stream === "system" ? "system" : key.indexOf("/") >= 0 ? key.slice(0, key.lastIndexOf("/")) : "";
    let section = Array.from(document.querySelectorAll(".chart-section")).find((s) => s.dataset.group === group);
    if (!section) {
      section = document.createElement("details");
      section.className = "chart-section";
      section.open = true;
      section.dataset.group = group;
      const summary = document.createElement("summary");
      const h = document.createElement("h2");
      h.textContent = group || "Charts";
      summary.append(h);
      const grid = document.createElement("div");
      grid.className = "charts";
      section.append(summary, grid);
      document.getElementById("charts").append(section);
    }
    const empty = document.querySelector("#charts > .empty");
    if (empty) empty.remove();
    const fig = figureFor(key, stream);
    section.querySelector(".charts").append(fig);
    entries.set(key, { key: key, stream: stream, figure: fig, data: null, chart: null });
    return fig;
  }

  // ---------------------------------------------------------------- live updates

  function setText(id, text) {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function showRun(info) {
    const badge = document.getElementById("run-state");
    if (badge && info.state !== run.state) {
      badge.textContent = info.state;
      badge.className = "badge state-" + info.state;
    }
    setText("run-runtime", SC.duration(info.runtime) || "—");
    setText("run-step", info.last_step >= 0 ? String(info.last_step) : "—");
    if (info.finished_at) {
      const when = new Date(info.finished_at.endsWith("Z") || info.finished_at.includes("+") ? info.finished_at : info.finished_at + "Z");
      setText("run-finished", when.toLocaleString());
    }
    showSummary(info.summary || {});
  }

  function flat(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj)) {
      const name = prefix + k;
      if (v && typeof v === "object" && !Array.isArray(v) && !("_type" in v) && !("$float" in v) && Object.keys(v).length) flat(v, name + ".", out);
      else out.push([name, v]);
    }
    return out;
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
    if (typeof v === "boolean") return String(v);
    if (typeof v === "object" && "$float" in v) return String(v.$float);
    if (typeof v === "object" && "_type" in v) return "[" + v._type + "]";
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  function showSummary(summary) {
    const table = document.getElementById("summary-table");
    if (!table) return;
    const rows = flat(summary, "", []).filter((r) => !r[0].startsWith("_"));
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const body = document.createElement("tbody");
    for (const [k, v] of rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = k;
      const td = document.createElement("td");
      td.textContent = fmtValue(v);
      tr.append(th, td);
      body.append(tr);
    }
    table.tBodies[0].replaceWith(body);
  }

  function append(col, more, after) {
    for (let i = 0; i < more.steps.length; i++) {
      if (more.steps[i] <= after) continue;
      col.steps.push(more.steps[i]);
      col.values.push(more.values[i]);
    }
  }

  /** New points of the drawn charts of one stream (and of its x column). */
  async function pollPoints(stream) {
    const drawn = Array.from(entries.values()).filter((e) => e.stream === stream && e.data);
    if (!drawn.length) return;
    const keys = drawn.map((e) => e.key);
    const xcol = xColumnOf(stream);
    if (xcol && xcols.has(xcol)) keys.push(xcol);
    let from = Math.min.apply(null, drawn.map((e) => e.lastStep));
    if (xcol && xcols.has(xcol)) from = Math.min(from, lastOf(xcols.get(xcol)));
    const body = await Stemma.api(historyUrl(keys, { min_step: from + 1, samples: 5000 }));
    if (xcol && body[xcol]) append(xcols.get(xcol), body[xcol], lastOf(xcols.get(xcol)));
    for (const e of drawn) {
      const more = body[e.key];
      if (!more || !more.steps.length) continue;
      append(e.data, more, e.lastStep);
      e.lastStep = lastOf(e.data);
      if (!e.zoomData) draw(e);
    }
  }

  /** Keys logged since the page was drawn get charts (numeric ones). */
  async function pollKeys() {
    const known = new Set(entries.keys());
    const body = await Stemma.api(base + "/history/keys");
    const fresh = (body.keys || []).filter((k) => !known.has(k) && !k.startsWith("_") && !k.endsWith("/_runtime") && !k.endsWith("/_timestamp"));
    if (!fresh.length) return;
    const probe = await Stemma.api(historyUrl(fresh.slice(0, 50), { samples: 4 }));
    for (const k of fresh.slice(0, 50)) {
      const col = probe[k];
      if (!col || !col.values.some((v) => typeof v === "number")) continue;
      const fig = addChart(k, k.startsWith("system/") ? "system" : "default");
      lazy(fig);
    }
  }

  let lazy = null;

  async function poll() {
    let info;
    try {
      info = await Stemma.api(base);
    } catch (error) {
      setText("run-live", "Live updates paused: " + error.message);
      setTimeout(poll, POLL_MS * 2);
      return;
    }
    showRun(info);
    const running = info.state === "running";
    if (run.tab === "charts" && document.getElementById("charts")) {
      try {
        await pollPoints("default");
        await pollPoints("system");
        await pollKeys();
      } catch (error) {
        setText("run-live", "Live updates paused: " + error.message);
      }
    }
    run.state = info.state;
    const live = document.getElementById("run-live");
    if (running) {
      live.hidden = false;
      live.textContent = "● live";
      setTimeout(poll, POLL_MS);
    } else {
      live.hidden = true;
      document.body.dataset.live = "stopped";
    }
  }

  // ---------------------------------------------------------------- media

  let plotly = null;
  function loadPlotly() {
    if (!plotly) {
      plotly = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = "/static/vendor/plotly.min.js";
        s.onload = () => resolve(window.Plotly);
        s.onerror = () => reject(new Error("Plotly is missing from this server: run `make ui`"));
        document.head.append(s);
      });
    }
    return plotly;
  }

  function mediaUrl(digest) {
    return base + "/media/" + encodeURIComponent(digest);
  }

  function imageFigure(digest, caption, meta, alt, upscale) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = mediaUrl(digest);
    img.alt = caption || alt;
    img.loading = "lazy";
    if (meta && meta.width && meta.height) {
      img.width = meta.width;
      img.height = meta.height;
      if (upscale && meta.width < 160) {
        // Small images (a 28x28 digit) shown bigger, pixels kept sharp by the CSS.
        img.style.width = Math.min(160, meta.width * 4) + "px";
        img.style.height = "auto";
      }
    }
    fig.append(img);
    if (caption) {
      const c = document.createElement("figcaption");
      c.textContent = caption;
      fig.append(c);
    }
    return fig;
  }

  function isImageRef(v) {
    return v && typeof v === "object" && v._type === "image-file" && typeof v.sha256 === "string";
  }

  function tableElement(json) {
    const columns = Array.isArray(json.columns) ? json.columns : [];
    const data = Array.isArray(json.data) ? json.data : [];
    const wrap = document.createElement("div");
    wrap.className = "table-wrap media-table";
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.textContent = String(c);
      head.append(th);
    }
    const body = table.createTBody();
    const LIMIT = 500;
    for (const row of data.slice(0, LIMIT)) {
      const tr = body.insertRow();
      for (const cell of Array.isArray(row) ? row : [row]) {
        const td = tr.insertCell();
        if (isImageRef(cell)) td.append(imageFigure(cell.sha256, cell.caption, cell, "image").firstChild);
        else if (typeof cell === "number") {
          td.className = "num";
          td.textContent = fmtValue(cell);
        } else td.textContent = fmtValue(cell);
      }
    }
    wrap.append(table);
    if (data.length > LIMIT) {
      const p = document.createElement("p");
      p.className = "muted small";
      p.textContent = "First " + LIMIT + " of " + data.length + " rows.";
      wrap.append(p);
    }
    return wrap;
  }

  async function renderMedia(section, entry, index) {
    const item = entry.items[index];
    const body = section.querySelector(".media-body");
    const out = section.querySelector(".media-step-value");
    out.textContent = "step " + item.step;
    section.dataset.step = String(item.step);
    const meta = item.meta || {};
    const token = String(Math.random());
    section.dataset.token = token;
    const put = (el) => {
      if (section.dataset.token === token) body.replaceChildren(el);
    };
    try {
      if (item.kind === "image") {
        put(imageFigure(item.digest, item.caption, meta, entry.key, true));
      } else if (item.kind === "images") {
        const grid = document.createElement("div");
        grid.className = "media-grid";
        for (const it of meta.items || []) grid.append(imageFigure(it.sha256, it.caption, it, entry.key, true));
        put(grid);
      } else if (item.kind === "html") {
        const frame = document.createElement("iframe");
        frame.className = "html-media";
        frame.setAttribute("sandbox", "");
        frame.setAttribute("referrerpolicy", "no-referrer");
        frame.title = item.caption || entry.key;
        frame.src = mediaUrl(item.digest);
        put(frame);
      } else if (item.kind === "table") {
        const json = await Stemma.api(mediaUrl(item.digest));
        put(tableElement(json || {}));
      } else if (item.kind === "plotly") {
        const [Plotly, fig] = await Promise.all([loadPlotly(), Stemma.api(mediaUrl(item.digest))]);
        const div = document.createElement("div");
        div.className = "plotly-media";
        put(div);
        await Plotly.newPlot(div, (fig && fig.data) || [], (fig && fig.layout) || {}, {
          displaylogo: false,
          responsive: true,
        });
      } else {
        const p = document.createElement("p");
        p.className = "muted";
        p.textContent = "This kind of media (" + item.kind + ") cannot be shown here.";
        put(p);
      }
      if (item.caption && item.kind !== "image" && item.kind !== "images") {
        const c = document.createElement("p");
        c.className = "small muted";
        c.textContent = item.caption;
        body.append(c);
      }
      section.dataset.rendered = "1";
    } catch (error) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = "Could not show this media: " + error.message;
      put(p);
    }
  }

  function setupMedia() {
    const media = Stemma.data("run-media") || [];
    const sections = Array.from(document.querySelectorAll(".media-key"));
    SC.lazy(sections, (section) => {
      const entry = media[Number(section.dataset.index)];
      renderMedia(section, entry, entry.items.length - 1);
    });
    for (const section of sections) {
      const slider = section.querySelector(".media-step");
      if (!slider) continue;
      const entry = media[Number(section.dataset.index)];
      slider.addEventListener("input", () => renderMedia(section, entry, Number(slider.value)));
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    run = Stemma.data("run-data");
    if (!run) return;
    base =
      "/api/v1/runs/" +
      [run.entity, run.project, run.run_id].map(encodeURIComponent).join("/");
    const charts = document.getElementById("charts");
    if (run.tab === "charts" && charts) {
      if (!SC.ready()) {
        SC.missing(charts);
      } else {
        for (const f of charts.querySelectorAll("figure.chart")) {
          entries.set(f.dataset.key, { key: f.dataset.key, stream: f.dataset.stream, figure: f, data: null, chart: null });
        }
        const queue = SC.batcher(load, 24);
        lazy = (fig) => SC.lazy([fig], queue);
        SC.lazy(Array.from(charts.querySelectorAll("figure.chart")), queue);
        setupControls();
      }
    }
    if (run.tab === "media") setupMedia();
    if (run.state === "running") setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
