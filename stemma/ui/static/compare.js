// The compare page: one chart per key with one line per run. The histories of the
// visible charts come from one POST per few keys (every run at once, downsampled so a
// chart holds about 200,000 points whatever the number of runs), then each run's points
// are put on a shared x grid (uPlot wants aligned data).
"use strict";
(function () {
  const SC = window.StemmaCharts;
  const view = { smoothing: 0, log: false };
  const charts = new Map(); // key -> {figure, chart, x, ys}
  const hidden = new Set(); // run indices switched off in the legend
  let data = null;

  function labels() {
    return data.runs.map((r) => r.name);
  }

  function colors() {
    return data.runs.map((r, i) => SC.color(i));
  }

  function drawKey(key, body) {
    const entry = charts.get(key);
    const runs = data.runs.map((r) => {
      const col = body[r.id] && body[r.id][key];
      return col ? { steps: col.steps, values: SC.numbers(col.values) } : null;
    });
    const grid = SC.regrid(runs, data.samples);
    if (!grid.x.length) {
      SC.message(entry.figure, "None of these runs logged " + key + ".");
      return;
    }
    entry.figure.querySelector(".chart-plot").replaceChildren();
    entry.chart = new SC.Chart(entry.figure, {
      labels: labels(),
      colors: colors(),
      smoothing: view.smoothing,
      log: view.log,
      rawFaint: data.runs.length <= 50,
      onZoom: (lo, hi) => {
        entry.chart.zoom = [lo, hi];
        entry.chart.u.setScale("x", { min: lo, max: hi });
        entry.figure.dataset.zoomed = "1";
      },
      onReset: () => {
        entry.chart.zoom = null;
        entry.chart.u.setScale("x", { min: grid.x[0], max: grid.x[grid.x.length - 1] });
        entry.figure.dataset.zoomed = "0";
      },
    });
    for (const i of hidden) entry.chart.hidden.add(i);
    entry.chart.setData(grid.x, grid.ys);
  }

  const pending = new Map(); // key -> promise of the histories holding it

  function request(keys) {
    const path =
      "/api/v1/projects/" + encodeURIComponent(data.entity) + "/" + encodeURIComponent(data.project) + "/histories";
    const promise = SC.fetchColumns(path, {
      run_ids: data.runs.map((r) => r.id),
      keys: keys,
      samples: data.samples,
    });
    for (const k of keys) pending.set(k, promise);
    return promise;
  }

  function load(figures) {
    const keys = figures.map((f) => f.dataset.key);
    const missing = keys.filter((k) => !pending.has(k));
    if (missing.length) request(missing);
    for (const f of figures) {
      pending
        .get(f.dataset.key)
        .then((body) => drawKey(f.dataset.key, body))
        .catch((error) => SC.message(f, "Could not load this chart: " + error.message, true));
    }
  }

  function setVisible(i, show) {
    if (show) hidden.delete(i);
    else hidden.add(i);
    for (const e of charts.values()) if (e.chart) e.chart.setVisible(i, show);
  }

  function setupLegend() {
    const boxes = Array.from(document.querySelectorAll("#run-legend input[type=checkbox]"));
    for (const box of boxes) {
      box.addEventListener("change", () => setVisible(Number(box.dataset.index), box.checked));
    }
    const all = (show) => () => {
      for (const box of boxes) {
        if (box.checked === show) continue;
        box.checked = show;
        setVisible(Number(box.dataset.index), show);
      }
    };
    document.getElementById("runs-all").addEventListener("click", all(true));
    document.getElementById("runs-none").addEventListener("click", all(false));
    for (const sw of document.querySelectorAll(".swatch[data-index]")) {
      sw.style.setProperty("--swatch", SC.color(Number(sw.dataset.index)));
    }
  }

  function setupControls() {
    SC.bindViewControls(view, function* () {
      for (const e of charts.values()) if (e.chart) yield e.chart;
    });
  }

  /** Ask for the first charts' histories at once: this script runs as soon as the page's
   * data is parsed, so the server works while the browser parses and lays out the rest. */
  function prefetch() {
    const block = document.getElementById("compare-data");
    data = block ? JSON.parse(block.textContent) : null;
    if (!data || !data.runs.length || !data.keys.length) return;
    const first = data.keys.slice(0, 6);
    for (let i = 0; i < first.length; i += perRequest()) request(first.slice(i, i + perRequest()));
  }

  /** Keys per request: many runs make big responses, so fewer keys (more in parallel). */
  function perRequest() {
    return data.runs.length > 100 ? 2 : data.runs.length > 20 ? 3 : 6;
  }

  function start() {
    if (!data || !data.runs.length) return;
    setupLegend();
    const box = document.getElementById("charts");
    if (!box) return;
    if (!SC.ready()) {
      SC.missing(box);
      return;
    }
    const figures = Array.from(box.querySelectorAll("figure.chart"));
    for (const f of figures) charts.set(f.dataset.key, { figure: f, chart: null });
    SC.lazy(figures, SC.batcher(load, perRequest()));
    setupControls();
  }

  prefetch();
  document.addEventListener("DOMContentLoaded", start);
})();
