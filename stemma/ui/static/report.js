// Reports: draws every panel of a report from the page's "report-data" block (made by
// stemma/report/evaluate.py), with no further request for data: line plots (one line per
// run, or per group a mean line over a shaded min-max band) with uPlot; bar, scatter and
// parallel-coordinates plots on a canvas; scalar charts as text. Tables and media are in
// the HTML already (report_blocks.html); logged tables and Plotly figures are fetched
// from their media URLs. The same script draws an exported report (data and scripts
// inline). Each figure records what it drew as data- attributes (points, series, groups,
// bands), as charts.js does, and <html data-report-drawn="1"> marks the end.
"use strict";
(function () {
  const SC = window.StemmaCharts;
  const HEIGHT = 240;
  const MAX_LEGEND = 12;

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function color(i) {
    return SC ? SC.color(i) : "#2f5fd0";
  }

  function fmt(v) {
    if (SC) return SC.fmt(v);
    return v === null || v === undefined ? "" : String(v);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  /** ``text`` in place of the chart (the panel's note below it goes when it says the same). */
  function message(fig, text, isError) {
    const note = fig.querySelector(".panel-note");
    if (note && note.textContent.trim() === String(text).trim()) note.remove();
    const plot = fig.querySelector(".chart-plot") || fig;
    const p = el("p", isError ? "chart-message error" : "chart-message muted", text);
    if (plot === fig) fig.append(p);
    else plot.replaceChildren(p);
  }

  /** Record what a figure drew (tests, the benchmark and the page read these). */
  function mark(fig, info) {
    fig.dataset.points = String(info.points || 0);
    fig.dataset.series = String(info.series || 0);
    if (info.groups !== undefined) fig.dataset.groups = String(info.groups);
    if (info.bands !== undefined) fig.dataset.bands = String(info.bands);
    if (info.scale) fig.dataset.scale = info.scale;
    fig.dataset.drawn = "1";
    fig.dataset.drawnAt = String(Math.round(performance.now()));
  }

  /** "Nice" tick values covering [lo, hi]: about ``n`` of them. */
  function ticks(lo, hi, n) {
    if (!isFinite(lo) || !isFinite(hi)) return [];
    if (hi === lo) return [lo];
    const raw = (hi - lo) / Math.max(1, n);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  /** A HiDPI canvas filling ``box`` (width from the layout, ``height`` CSS pixels). */
  function canvasIn(box, height) {
    const width = Math.max(240, box.clientWidth || 400);
    const ratio = window.devicePixelRatio || 1;
    const canvas = el("canvas");
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.font = "11px system-ui, sans-serif";
    box.replaceChildren(canvas);
    return { canvas: canvas, ctx: ctx, w: width, h: height };
  }

  function clip(ctx, text, width) {
    text = String(text);
    if (ctx.measureText(text).width <= width) return text;
    while (text.length > 1 && ctx.measureText(text + "…").width > width) text = text.slice(0, -1);
    return text + "…";
  }

  /** Swatch + label entries under a chart; with ``toggle(i, show)`` they are buttons
   * that hide and show their series. */
  function legend(fig, items, toggle, extra) {
    const box = fig.querySelector(".report-legend");
    if (!box) return;
    box.replaceChildren();
    const shown = items.slice(0, MAX_LEGEND);
    shown.forEach(function (item, i) {
      const entry = toggle ? el("button", "legend-item") : el("span", "legend-item");
      if (toggle) {
        entry.type = "button";
        entry.setAttribute("aria-pressed", "true");
        entry.title = "Show or hide " + item.label;
        entry.addEventListener("click", function () {
          const on = entry.getAttribute("aria-pressed") !== "true";
          entry.setAttribute("aria-pressed", on ? "true" : "false");
          toggle(i, on);
        });
      }
      const sw = el("span", "swatch");
      sw.style.setProperty("--swatch", item.color);
      entry.append(sw, document.createTextNode(item.label));
      if (item.note) entry.append(el("span", "muted", " " + item.note));
      box.append(entry);
    });
    if (items.length > shown.length) box.append(el("span", "muted", "and " + (items.length - shown.length) + " more"));
    if (extra) box.append(el("span", "muted", extra));
  }

  // ---------------------------------------------------------------- line plots

  function xFormatter(kind) {
    if (kind === "runtime") return function (v) { return SC.duration(v); };
    if (kind === "time") return function (v) { return new Date(v * 1000).toLocaleString(); };
    return fmt;
  }

  function drawLine(fig, p) {
    const plot = fig.querySelector(".chart-plot");
    if (!SC || !SC.ready()) {
      if (SC) SC.missing(plot);
      return mark(fig, {});
    }
    if (!p.series.length || !p.x.length) {
      message(fig, p.note || "No history of these keys in these runs.");
      return mark(fig, { groups: p.grouped ? 0 : undefined, bands: 0 });
    }
    let x = p.x;
    let from = 0;
    if (p.log_x) while (from < x.length && !(x[from] > 0)) from++;
    const cut = function (arr) { return from ? arr.slice(from) : arr; };
    x = cut(x);
    const w = Math.min(0.99, Math.max(0, Number(p.smoothing) || 0));
    const logY = !!p.log_y;
    const prep = function (arr) {
      let out = cut(arr);
      if (w > 0) out = SC.ema(out, w);
      if (logY) out = out.map(function (v) { return v !== null && v > 0 ? v : null; });
      return out;
    };
    const many = p.series.length > 50;
    const series = [{}];
    const data = [x];
    const bands = [];
    const main = []; // uPlot index of each logical series' line
    const parts = []; // uPlot indices of each logical series (band edges, raw, line)
    let points = 0;
    p.series.forEach(function (s) {
      const c = color(s.color);
      const idx = [];
      if (s.min && s.max) {
        series.push({ label: s.label + " (max)", stroke: SC.alpha(c, 0.25), width: 0, points: { show: false }, spanGaps: true });
        data.push(prep(s.max));
        series.push({ label: s.label + " (min)", stroke: SC.alpha(c, 0.25), width: 0, points: { show: false }, spanGaps: true });
        data.push(prep(s.min));
        bands.push({ series: [series.length - 2, series.length - 1], fill: SC.alpha(c, 0.16) });
        idx.push(series.length - 2, series.length - 1);
      }
      if (w > 0 && !many) {
        series.push({ label: s.label + " (raw)", stroke: SC.alpha(c, 0.25), width: 1, points: { show: false }, spanGaps: true });
        data.push(cut(s.y));
        idx.push(series.length - 1);
      }
      const y = prep(s.y);
      series.push({
        label: s.label,
        stroke: c,
        width: many ? 1 : s.min ? 2 : 1.5,
        spanGaps: true,
        points: { show: x.length < 40 && p.series.length < 10 },
      });
      data.push(y);
      idx.push(series.length - 1);
      main.push(series.length - 1);
      parts.push(idx);
      for (let k = 0; k < y.length; k++) if (y[k] !== null) points++;
    });
    const fg = cssVar("--muted", "#5d6875");
    const grid = cssVar("--line", "#dfe3e8");
    const font = "11px system-ui, sans-serif";
    const fx = xFormatter(p.x_kind);
    const range = function (r) {
      if (!r) return undefined;
      return function (u, lo, hi) { return [r[0] === null ? lo : r[0], r[1] === null ? hi : r[1]]; };
    };
    const readout = fig.querySelector(".chart-readout") || el("div", "chart-readout small");
    if (!readout.parentNode) plot.after(readout);
    const show = function (u) {
      const i = u.cursor.idx;
      readout.replaceChildren();
      if (i === null || i === undefined || i < 0) return;
      readout.append(el("span", null, (p.x_kind === "step" ? "step " : p.x_key + " ") + fx(x[i])));
      const order = [];
      main.forEach(function (s, n) {
        if (u.series[s].show && data[s][i] !== null && data[s][i] !== undefined) order.push(n);
      });
      order.sort(function (a, b) { return data[main[b]][i] - data[main[a]][i]; });
      order.slice(0, 6).forEach(function (n) {
        const s = p.series[n];
        let text = s.label + " " + fmt(data[main[n]][i]);
        if (s.min && s.max) text += " (" + fmt(s.min[i + from]) + "–" + fmt(s.max[i + from]) + ", " + s.count + " runs)";
        const span = el("span", "swatch", text);
        span.style.setProperty("--swatch", color(s.color));
        readout.append(span);
      });
      if (order.length > 6) readout.append(el("span", "muted", "+" + (order.length - 6) + " more"));
    };
    const opts = {
      width: Math.max(240, plot.clientWidth || 400),
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      scales: {
        x: { time: p.x_kind === "time", distr: p.log_x ? 3 : 1, range: range(p.range_x) },
        y: Object.assign(logY ? { distr: 3, log: 10 } : { distr: 1 }, p.range_y ? { range: range(p.range_y) } : {}),
      },
      bands: bands,
      axes: [
        {
          stroke: fg, font: font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
          values: p.x_kind === "time" ? undefined : function (u, splits) { return splits.map(fx); },
        },
        {
          stroke: fg, font: font, size: 54, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
          values: function (u, splits) { return splits.map(fmt); },
        },
      ],
      series: series,
      hooks: { setCursor: [show] },
    };
    plot.replaceChildren();
    const u = new window.uPlot(opts, data, plot);
    u.over.title = "Drag to zoom, double-click to reset";
    plot.setAttribute("role", "img");
    plot.setAttribute(
      "aria-label",
      "Line chart of " + p.title + ": " + p.series.length + (p.grouped ? " groups" : " lines") + ", " + points + " points"
    );
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        if (plot.clientWidth && Math.abs(u.width - plot.clientWidth) > 2) u.setSize({ width: plot.clientWidth, height: HEIGHT });
      }).observe(plot);
    }
    const items = p.series.map(function (s) {
      return { label: s.label, color: color(s.color), note: p.grouped ? "(" + s.count + " run" + (s.count === 1 ? "" : "s") + ")" : "" };
    });
    let extra = "";
    if (p.grouped) extra = "mean line, min–max band";
    if (w > 0) extra += (extra ? " · " : "") + "smoothing " + w;
    legend(
      fig,
      items,
      function (n, on) {
        u.batch(function () { parts[n].forEach(function (s) { u.setSeries(s, { show: on }); }); });
      },
      extra
    );
    mark(fig, {
      points: points,
      series: p.series.length,
      groups: p.grouped ? p.groups : undefined,
      bands: bands.length,
      scale: logY ? "log" : "linear",
    });
    fig.dataset.xKind = p.x_kind;
  }

  // ---------------------------------------------------------------- canvas plots

  /** Axes of a canvas plot: y ticks on the left, x ticks at the bottom. */
  function axes(ctx, box, xs, ys, fx, fy) {
    const fg = cssVar("--muted", "#5d6875");
    const line = cssVar("--line", "#dfe3e8");
    ctx.strokeStyle = line;
    ctx.fillStyle = fg;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of ys.ticks) {
      const y = ys.at(t);
      ctx.beginPath();
      ctx.moveTo(box.l, Math.round(y) + 0.5);
      ctx.lineTo(box.r, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(fy(ys.label(t)), box.l - 4, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of xs.ticks) {
      const x = xs.at(t);
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, box.t);
      ctx.lineTo(Math.round(x) + 0.5, box.b);
      ctx.stroke();
      ctx.fillText(fx(xs.label(t)), x, box.b + 4);
    }
  }

  /** A linear (or log, when ``log``) scale of [lo, hi] onto [a, b] pixels. */
  function scale(lo, hi, a, b, log) {
    if (log) {
      const l0 = Math.log10(lo), l1 = Math.log10(hi);
      const span = l1 - l0 || 1;
      const t = [];
      for (let e = Math.floor(l0); e <= Math.ceil(l1); e++) t.push(e);
      return {
        log: true,
        ticks: t.filter(function (e) { return e >= l0 - 1e-9 && e <= l1 + 1e-9; }),
        at: function (v) { return a + ((v - l0) / span) * (b - a); },
        of: function (v) { return a + ((Math.log10(v) - l0) / span) * (b - a); },
        label: function (e) { return Math.pow(10, e); },
      };
    }
    if (hi === lo) {
      lo -= Math.abs(lo) * 0.1 || 1;
      hi += Math.abs(hi) * 0.1 || 1;
    }
    const span = hi - lo;
    return {
      log: false,
      ticks: ticks(lo, hi, 5),
      at: function (v) { return a + ((v - lo) / span) * (b - a); },
      of: function (v) { return a + ((v - lo) / span) * (b - a); },
      label: function (v) { return v; },
    };
  }

  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) {
      if (v === null || v === undefined || !isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return [lo, hi];
  }

  /** Log when every value is positive and they span 2 decades or more (learning rates). */
  function wantsLog(values) {
    const [lo, hi] = extent(values);
    return lo > 0 && hi / lo >= 100;
  }

  function drawBar(fig, p) {
    const plot = fig.querySelector(".chart-plot");
    const rows = [];
    const many = p.metrics.length > 1;
    p.bars.forEach(function (bar) {
      p.metrics.forEach(function (m, k) {
        const v = bar.values[m];
        if (v === null || v === undefined) return;
        rows.push({
          label: many ? bar.label + " · " + m : bar.label,
          value: v,
          min: bar.min ? bar.min[m] : null,
          max: bar.max ? bar.max[m] : null,
          count: bar.count,
          color: color(many ? k : bar.color),
        });
      });
    });
    if (!rows.length) {
      message(fig, p.note || "No run has a number for " + p.metrics.join(", ") + ".");
      return mark(fig, { groups: p.groupby ? 0 : undefined });
    }
    const rowH = Math.max(22, Math.min(40, Math.floor(180 / rows.length)));
    const height = rows.length * rowH + 30;
    const c = canvasIn(plot, height);
    const ctx = c.ctx;
    let labelW = 0;
    for (const r of rows) labelW = Math.max(labelW, ctx.measureText(r.label).width);
    labelW = Math.min(c.w * 0.4, labelW + 10);
    const all = [0];
    for (const r of rows) all.push(r.value, r.min, r.max);
    const [lo, hi] = extent(all);
    const valueText = function (r) { return fmt(r.value) + (p.groupby ? " (" + r.count + ")" : ""); };
    let valueW = 0;
    for (const r of rows) valueW = Math.max(valueW, ctx.measureText(valueText(r)).width);
    const box = { l: labelW + 4, r: c.w - Math.min(c.w * 0.25, valueW + 10), t: 4, b: height - 22 };
    const xs = scale(lo, hi, box.l, box.r, false);
    axes(ctx, box, xs, { ticks: [], at: function () { return 0; }, label: function (v) { return v; } }, fmt, fmt);
    const fg = cssVar("--fg", "#1d232b");
    rows.forEach(function (r, i) {
      const y = box.t + i * rowH + 3;
      const x0 = xs.of(0), x1 = xs.of(r.value);
      ctx.fillStyle = r.color;
      ctx.fillRect(Math.min(x0, x1), y, Math.max(1, Math.abs(x1 - x0)), rowH - 8);
      if (r.min !== null && r.max !== null && r.min !== undefined && p.groupby) {
        const mid = y + (rowH - 8) / 2;
        ctx.strokeStyle = fg;
        ctx.beginPath();
        ctx.moveTo(xs.of(r.min), mid);
        ctx.lineTo(xs.of(r.max), mid);
        ctx.moveTo(xs.of(r.min), mid - 4);
        ctx.lineTo(xs.of(r.min), mid + 4);
        ctx.moveTo(xs.of(r.max), mid - 4);
        ctx.lineTo(xs.of(r.max), mid + 4);
        ctx.stroke();
      }
      ctx.fillStyle = fg;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ctx.fillText(clip(ctx, r.label, labelW - 6), labelW, y + (rowH - 8) / 2);
      ctx.textAlign = "left";
      const end = Math.max(x0, x1, r.max !== null && p.groupby ? xs.of(r.max) : 0);
      ctx.fillText(valueText(r), end + 4, y + (rowH - 8) / 2);
    });
    c.canvas.setAttribute("role", "img");
    c.canvas.setAttribute("aria-label", "Bar chart of " + p.title + ": " + rows.length + " bars");
    if (many) {
      legend(fig, p.metrics.map(function (m, k) { return { label: m, color: color(k) }; }), null, p.groupby ? "means per group, min–max whiskers" : "");
    } else if (p.groupby) {
      legend(fig, [], null, "mean per group (runs in brackets), min–max whiskers");
    }
    mark(fig, { points: rows.length, series: p.bars.length, groups: p.groupby ? p.bars.length : undefined });
  }

  function drawScatter(fig, p, runs) {
    const plot = fig.querySelector(".chart-plot");
    if (!p.points.length) {
      message(fig, p.note || "No points.");
      return mark(fig, {});
    }
    const height = HEIGHT;
    const c = canvasIn(plot, height);
    const ctx = c.ctx;
    const xv = p.points.map(function (q) { return q.x; });
    const yv = p.points.map(function (q) { return q.y; });
    const logX = wantsLog(xv), logY = wantsLog(yv);
    const [x0, x1] = extent(xv), [y0, y1] = extent(yv);
    const box = { l: 58, r: c.w - 10, t: 8, b: height - 34 };
    const xs = scale(x0, x1, box.l + 6, box.r - 6, logX);
    const ys = scale(y0, y1, box.b - 6, box.t + 6, logY);
    axes(ctx, box, xs, ys, fmt, fmt);
    ctx.fillStyle = cssVar("--muted", "#5d6875");
    ctx.textAlign = "center";
    ctx.fillText(p.x_key + (logX ? " (log)" : ""), (box.l + box.r) / 2, height - 14);
    const placed = p.points.map(function (q) {
      const run = runs[q.run] || {};
      return { x: xs.of(q.x), y: ys.of(q.y), q: q, run: run };
    });
    for (const pt of placed) {
      ctx.beginPath();
      ctx.fillStyle = SC ? SC.alpha(color(pt.run.color || 0), 0.8) : "#2f5fd0";
      ctx.arc(pt.x, pt.y, 4, 0, 2 * Math.PI);
      ctx.fill();
    }
    const readout = el("div", "chart-readout small");
    plot.after(readout);
    c.canvas.addEventListener("mousemove", function (ev) {
      const r = c.canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left, my = ev.clientY - r.top;
      let best = null, bd = 100;
      for (const pt of placed) {
        const d = (pt.x - mx) * (pt.x - mx) + (pt.y - my) * (pt.y - my);
        if (d < bd) { bd = d; best = pt; }
      }
      readout.replaceChildren();
      if (best) readout.append(el("span", null, best.run.name + ": " + p.x_key + " " + fmt(best.q.x) + ", " + p.y_key + " " + fmt(best.q.y)));
    });
    c.canvas.setAttribute("role", "img");
    c.canvas.setAttribute("aria-label", "Scatter plot of " + p.y_key + " against " + p.x_key + ": " + placed.length + " runs");
    legend(fig, [], null, "y: " + p.y_key + (logY ? " (log)" : "") + " · one point per run");
    mark(fig, { points: placed.length, series: 1, scale: (logX ? "logx" : "linx") + "," + (logY ? "logy" : "liny") });
  }

  function drawParallel(fig, p, runs) {
    const plot = fig.querySelector(".chart-plot");
    const cols = p.columns;
    if (!p.rows.length || !cols.length) {
      message(fig, p.note || "No runs have these columns.");
      return mark(fig, {});
    }
    const height = 260;
    const c = canvasIn(plot, height);
    const ctx = c.ctx;
    const box = { l: 40, r: c.w - 40, t: 40, b: height - 24 };
    const axesOf = cols.map(function (name, k) {
      const vals = p.rows.map(function (r) { return r.values[k]; }).filter(function (v) { return v !== null && v !== undefined; });
      const numeric = vals.length > 0 && vals.every(function (v) { return typeof v === "number"; });
      const x = cols.length === 1 ? (box.l + box.r) / 2 : box.l + (k * (box.r - box.l)) / (cols.length - 1);
      if (numeric) {
        const log = wantsLog(vals);
        const [lo, hi] = extent(vals);
        const s = scale(lo, hi, box.b, box.t, log);
        return { name: name, x: x, numeric: true, pos: function (v) { return typeof v === "number" ? s.of(v) : null; }, lo: lo, hi: hi, log: log };
      }
      const cats = Array.from(new Set(vals.map(String))).sort();
      const pos = new Map();
      cats.forEach(function (v, i) { pos.set(v, cats.length === 1 ? (box.t + box.b) / 2 : box.b - (i * (box.b - box.t)) / (cats.length - 1)); });
      return { name: name, x: x, numeric: false, cats: cats, pos: function (v) { return v === null || v === undefined ? null : pos.get(String(v)); } };
    });
    // Lines coloured by the last numeric column (low: blue, high: orange).
    let ck = -1;
    for (let k = cols.length - 1; k >= 0; k--) if (axesOf[k].numeric) { ck = k; break; }
    const ramp = function (t) {
      const a = [47, 95, 208], b = [232, 89, 12];
      const m = a.map(function (v, i) { return Math.round(v + (b[i] - v) * t); });
      return "rgba(" + m.join(",") + "," + (p.rows.length > 200 ? 0.35 : 0.7) + ")";
    };
    ctx.lineWidth = 1.2;
    let drawn = 0;
    for (const row of p.rows) {
      let t = 0.5;
      if (ck >= 0 && typeof row.values[ck] === "number" && axesOf[ck].hi > axesOf[ck].lo) {
        const a = axesOf[ck];
        t = a.log
          ? (Math.log10(row.values[ck]) - Math.log10(a.lo)) / (Math.log10(a.hi) - Math.log10(a.lo))
          : (row.values[ck] - a.lo) / (a.hi - a.lo);
      }
      ctx.strokeStyle = ramp(Math.min(1, Math.max(0, t)));
      ctx.beginPath();
      let open = false;
      axesOf.forEach(function (a, k) {
        const y = a.pos(row.values[k]);
        if (y === null || y === undefined || !isFinite(y)) {
          open = false;
          return;
        }
        if (open) ctx.lineTo(a.x, y);
        else ctx.moveTo(a.x, y);
        open = true;
      });
      ctx.stroke();
      drawn++;
    }
    const fg = cssVar("--fg", "#1d232b");
    const muted = cssVar("--muted", "#5d6875");
    const slot = cols.length > 1 ? (box.r - box.l) / (cols.length - 1) : box.r - box.l;
    for (const a of axesOf) {
      ctx.strokeStyle = fg;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.round(a.x) + 0.5, box.t);
      ctx.lineTo(Math.round(a.x) + 0.5, box.b);
      ctx.stroke();
      ctx.fillStyle = fg;
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      ctx.fillText(clip(ctx, a.name, slot - 6), a.x, box.t - 16);
      ctx.fillStyle = muted;
      if (a.numeric) {
        ctx.textBaseline = "bottom";
        ctx.fillText(fmt(a.hi), a.x, box.t - 2);
        ctx.textBaseline = "top";
        ctx.fillText(fmt(a.lo) + (a.log ? " (log)" : ""), a.x, box.b + 3);
      } else {
        ctx.textAlign = "left";
        ctx.textBaseline = "middle";
        for (const v of a.cats.slice(0, 20)) ctx.fillText(clip(ctx, v, slot / 2), a.x + 4, a.pos(v));
      }
    }
    c.canvas.setAttribute("role", "img");
    c.canvas.setAttribute("aria-label", "Parallel coordinates of " + cols.join(", ") + ": " + drawn + " runs");
    legend(fig, [], null, ck >= 0 ? "colour: " + cols[ck] + " (blue low, orange high)" : "");
    mark(fig, { points: drawn, series: cols.length });
  }

  function drawScalar(fig, p) {
    const plot = fig.querySelector(".chart-plot");
    const box = el("div", "scalar");
    if (p.value === null || p.value === undefined) {
      message(fig, p.note || "No value.");
      return mark(fig, {});
    }
    box.append(el("div", "scalar-value", fmt(p.value)));
    let sub = "mean of " + p.count + " run" + (p.count === 1 ? "" : "s");
    if (p.count > 1) sub += " · " + fmt(p.min) + " to " + fmt(p.max);
    box.append(el("div", "small muted", sub));
    if (p.groups && p.groups.length) {
      const list = el("ul", "scalar-groups");
      p.groups.forEach(function (g) {
        const li = el("li");
        const sw = el("span", "swatch", g.label);
        sw.style.setProperty("--swatch", color(g.color));
        li.append(sw, el("b", null, " " + fmt(g.value)), el("span", "muted small", " (" + g.count + ")"));
        list.append(li);
      });
      box.append(list);
    }
    plot.replaceChildren(box);
    mark(fig, { points: p.count, series: 1, groups: p.groupby ? p.groups.length : undefined });
  }

  // ---------------------------------------------------------------- media

  let plotly = null;
  function loadPlotly() {
    if (!plotly) {
      plotly = new Promise(function (resolve, reject) {
        if (window.Plotly) return resolve(window.Plotly);
        const s = document.createElement("script");
        s.src = "/static/vendor/plotly.min.js";
        s.onload = function () { resolve(window.Plotly); };
        s.onerror = function () { reject(new Error("Plotly is missing: run `make ui`")); };
        document.head.append(s);
      });
    }
    return plotly;
  }

  function tableOf(json) {
    const wrap = el("div", "table-wrap media-table");
    const table = el("table");
    const head = table.createTHead().insertRow();
    for (const c of Array.isArray(json.columns) ? json.columns : []) head.append(el("th", null, String(c)));
    const body = table.createTBody();
    const rows = Array.isArray(json.data) ? json.data : [];
    for (const row of rows.slice(0, 200)) {
      const tr = body.insertRow();
      for (const v of Array.isArray(row) ? row : [row]) {
        const td = tr.insertCell();
        td.textContent = typeof v === "number" ? fmt(v) : v && typeof v === "object" ? "[" + (v._type || "object") + "]" : String(v);
      }
    }
    wrap.append(table);
    if (rows.length > 200) wrap.append(el("p", "muted small", "First 200 of " + rows.length + " rows."));
    return wrap;
  }

  async function fillMedia(box) {
    try {
      const response = await fetch(box.dataset.url, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      const json = await response.json();
      if (box.dataset.kind === "table") box.replaceChildren(tableOf(json || {}));
      else if (box.dataset.kind === "plotly") {
        const Plotly = await loadPlotly();
        const div = el("div", "plotly-media");
        box.replaceChildren(div);
        await Plotly.newPlot(div, (json && json.data) || [], (json && json.layout) || {}, { displaylogo: false, responsive: true });
      } else box.replaceChildren(el("p", "muted small", "This kind of media (" + box.dataset.kind + ") cannot be shown here."));
    } catch (error) {
      box.replaceChildren(el("p", "error small", "Could not show this media: " + error.message));
    }
  }

  // ---------------------------------------------------------------- the page

  function drawPanel(fig, data) {
    const b = Number(fig.dataset.block), j = Number(fig.dataset.panel);
    const block = data.blocks[b];
    const grid = (block && block.data) || {};
    const p = (grid.panels || [])[j];
    const runs = grid.runs || [];
    if (!p) return mark(fig, {});
    switch (p.kind) {
      case "line": return drawLine(fig, p);
      case "bar": return drawBar(fig, p);
      case "scalar": return drawScalar(fig, p);
      case "scatter": return drawScatter(fig, p, runs);
      case "parallel": return drawParallel(fig, p, runs);
      case "table": return mark(fig, { points: p.rows.length, series: p.columns.length });
      case "comparer": return mark(fig, { points: p.rows.length, series: p.runs.length });
      case "media":
        fig.querySelectorAll(".media-json").forEach(fillMedia);
        return mark(fig, { points: p.items.length, series: 1 });
      default:
        message(fig, p.note || "This panel cannot be drawn.", p.kind === "error");
        return mark(fig, {});
    }
  }

  function main() {
    const node = document.getElementById("report-data");
    if (!node) return;
    const data = JSON.parse(node.textContent);
    const figures = Array.from(document.querySelectorAll("figure.report-panel"));
    for (const fig of figures) {
      try {
        drawPanel(fig, data);
      } catch (error) {
        message(fig, "Could not draw this panel: " + error.message, true);
        mark(fig, {});
        if (window.console) console.warn(error);
      }
    }
    document.documentElement.dataset.reportDrawn = "1";
    document.documentElement.dataset.reportDrawnAt = String(Math.round(performance.now()));
    const copy = document.getElementById("copy-share");
    const link = document.getElementById("share-link");
    if (copy && link && navigator.clipboard) {
      copy.hidden = false;
      copy.addEventListener("click", function () {
        navigator.clipboard.writeText(link.value).then(function () { copy.textContent = "Copied"; });
      });
    }
    if (link) link.addEventListener("focus", function () { link.select(); });
  }

  window.StemmaReport = { draw: main, ticks: ticks };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
