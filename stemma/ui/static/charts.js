// Line charts for the run and compare pages: a thin layer over uPlot (vendored by
// `make ui`). A chart draws one or more series over a shared x array, with EMA smoothing
// (the raw line kept faint), a log scale, drag-to-zoom (the page refetches the range)
// and a readout of the values under the cursor. After every draw it records what it
// drew on its <figure> as data- attributes (points, series, x range, scale), which the
// page's tests read.
"use strict";
(function () {
  const SC = {};
  const PALETTE = [
    "#2f5fd0", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#1098ad", "#f08c00",
    "#5c940d", "#d6336c", "#364fc7", "#a61e4d", "#0b7285", "#862e9c", "#e67700",
    "#495057", "#087f5b", "#9c36b5", "#1864ab", "#d9480f", "#2f9e44",
  ];
  // The same hues, lighter, for dark backgrounds.
  const PALETTE_DARK = [
    "#7aa2ff", "#ff922b", "#51cf66", "#f06595", "#9775fa", "#3bc9db", "#fcc419",
    "#a9e34b", "#faa2c1", "#91a7ff", "#e599f7", "#66d9e8", "#da77f2", "#ffc078",
    "#ced4da", "#38d9a9", "#d0bfff", "#74c0fc", "#ff8787", "#8ce99a",
  ];
  const HEIGHT = 220;
  const dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  /** Whether the vendored uPlot loaded (else pages say: run `make ui`). */
  SC.ready = function () {
    return typeof window.uPlot === "function";
  };

  /** The colour of series ``i``: a fixed palette, then golden-angle hues. */
  SC.color = function (i) {
    const isDark = !!(dark && dark.matches);
    if (i < PALETTE.length) return (isDark ? PALETTE_DARK : PALETTE)[i];
    return "hsl(" + Math.round((i * 137.508) % 360) + (isDark ? " 70% 66%)" : " 62% 46%)");
  };

  /** ``color`` at opacity ``a`` (hex or hsl colours, as SC.color makes them). */
  SC.alpha = function (color, a) {
    if (color[0] === "#") {
      const n = parseInt(color.slice(1), 16);
      return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
    }
    return color.replace(")", " / " + a + ")");
  };

  /** Exponential moving average with bias correction (as TensorBoard smooths):
   * ``weight`` 0 returns the values; nulls stay null and do not reset the average. */
  SC.ema = function (values, weight) {
    if (!weight) return values;
    const out = new Array(values.length);
    let last = 0;
    let n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || v === undefined || !isFinite(v)) {
        out[i] = null;
        continue;
      }
      last = last * weight + (1 - weight) * v;
      n += 1;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  };

  /** Numbers of a history column for a chart: anything else (strings, None) is null. */
  SC.numbers = function (values) {
    const out = new Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      out[i] = typeof v === "number" && isFinite(v) ? v : null;
    }
    return out;
  };

  /** Linear interpolation of ``xs`` (increasing) -> ``ys`` at each of ``at`` (increasing
   * too): maps steps to runtimes or timestamps; ends are held. */
  SC.interpolate = function (xs, ys, at) {
    const n = xs.length;
    const out = new Array(at.length);
    if (!n) return out.fill(null);
    let j = 0;
    for (let i = 0; i < at.length; i++) {
      const s = at[i];
      if (s <= xs[0]) out[i] = ys[0];
      else if (s >= xs[n - 1]) out[i] = ys[n - 1];
      else {
        while (xs[j + 1] < s) j++; // xs[j] <= s <= xs[j + 1]
        const x0 = xs[j], x1 = xs[j + 1];
        out[i] = x1 === x0 ? ys[j] : ys[j] + ((ys[j + 1] - ys[j]) * (s - x0)) / (x1 - x0);
      }
    }
    return out;
  };

  /** Runs sampled at different steps on one x array (uPlot's data is aligned):
   * ``runs`` is a list of {steps, values} (or null). When the steps of all runs
   * together are few, they are the grid (exact); else ``buckets`` equal step ranges,
   * each run's points averaged per bucket. Returns {x, ys}. */
  SC.regrid = function (runs, buckets) {
    let lo = Infinity, hi = -Infinity, total = 0;
    for (const r of runs) {
      if (!r || !r.steps.length) continue;
      lo = Math.min(lo, r.steps[0]);
      hi = Math.max(hi, r.steps[r.steps.length - 1]);
      total += r.steps.length;
    }
    if (!total) return { x: [], ys: runs.map(() => []) };
    const union = new Set();
    for (const r of runs) {
      if (!r) continue;
      for (const s of r.steps) {
        union.add(s);
        if (union.size > 2 * buckets) break;
      }
      if (union.size > 2 * buckets) break;
    }
    if (union.size <= 2 * buckets) {
      const x = Array.from(union).sort((a, b) => a - b);
      const index = new Map();
      x.forEach((s, i) => index.set(s, i));
      const ys = runs.map((r) => {
        const y = new Array(x.length).fill(null);
        if (r) for (let i = 0; i < r.steps.length; i++) y[index.get(r.steps[i])] = r.values[i];
        return y;
      });
      return { x: x, ys: ys };
    }
    const n = Math.max(1, buckets);
    const width = (hi - lo) / n || 1;
    const x = new Array(n);
    for (let b = 0; b < n; b++) x[b] = lo + (b + 0.5) * width;
    const sums = new Float64Array(n);
    const counts = new Uint32Array(n);
    const ys = runs.map((r) => {
      const y = new Array(n).fill(null);
      if (!r) return y;
      sums.fill(0);
      counts.fill(0);
      for (let i = 0; i < r.steps.length; i++) {
        const v = r.values[i];
        if (v === null) continue;
        const b = Math.min(n - 1, Math.floor((r.steps[i] - lo) / width));
        sums[b] += v;
        counts[b] += 1;
      }
      for (let b = 0; b < n; b++) if (counts[b]) y[b] = sums[b] / counts[b];
      return y;
    });
    return { x: x, ys: ys };
  };

  // ------------------------------------------------------------ binary histories
  // The history routes answer msgpack unless asked for JSON: {key: [kind, steps, values]}
  // with the columns' raw chunk blobs (see stemma/wire/chunks.py). Decoding them here is
  // far cheaper than JSON for big reads (500 runs: no float printing on the server, no
  // float parsing here), so the compare page asks for it.

  /** A minimal msgpack decoder: maps, arrays, strings, binaries, numbers, nil, bools. */
  function unpack(buffer) {
    const bytes = new Uint8Array(buffer);
    const view = new DataView(buffer);
    const text = new TextDecoder();
    let pos = 0;
    function str(n) {
      const s = text.decode(bytes.subarray(pos, pos + n));
      pos += n;
      return s;
    }
    function bin(n) {
      const b = buffer.slice(pos, pos + n); // a copy: aligned for typed arrays
      pos += n;
      return b;
    }
    function arr(n) {
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = read();
      return out;
    }
    function map(n) {
      const out = {};
      for (let i = 0; i < n; i++) {
        const k = read();
        out[k] = read();
      }
      return out;
    }
    function u64() {
      const hi = view.getUint32(pos), lo = view.getUint32(pos + 4);
      pos += 8;
      return hi * 4294967296 + lo;
    }
    function i64() {
      const hi = view.getInt32(pos), lo = view.getUint32(pos + 4);
      pos += 8;
      return hi * 4294967296 + lo;
    }
    function read() {
      const t = bytes[pos++];
      if (t < 0x80) return t;
      if (t < 0x90) return map(t & 0x0f);
      if (t < 0xa0) return arr(t & 0x0f);
      if (t < 0xc0) return str(t & 0x1f);
      if (t >= 0xe0) return t - 256;
      let v;
      switch (t) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: v = bytes[pos]; pos += 1; return bin(v);
        case 0xc5: v = view.getUint16(pos); pos += 2; return bin(v);
        case 0xc6: v = view.getUint32(pos); pos += 4; return bin(v);
        case 0xca: v = view.getFloat32(pos); pos += 4; return v;
        case 0xcb: v = view.getFloat64(pos); pos += 8; return v;
        case 0xcc: v = bytes[pos]; pos += 1; return v;
        case 0xcd: v = view.getUint16(pos); pos += 2; return v;
        case 0xce: v = view.getUint32(pos); pos += 4; return v;
        case 0xcf: return u64();
        case 0xd0: v = view.getInt8(pos); pos += 1; return v;
        case 0xd1: v = view.getInt16(pos); pos += 2; return v;
        case 0xd2: v = view.getInt32(pos); pos += 4; return v;
        case 0xd3: return i64();
        case 0xd9: v = bytes[pos]; pos += 1; return str(v);
        case 0xda: v = view.getUint16(pos); pos += 2; return str(v);
        case 0xdb: v = view.getUint32(pos); pos += 4; return str(v);
        case 0xdc: v = view.getUint16(pos); pos += 2; return arr(v);
        case 0xdd: v = view.getUint32(pos); pos += 4; return arr(v);
        case 0xde: v = view.getUint16(pos); pos += 2; return map(v);
        case 0xdf: v = view.getUint32(pos); pos += 4; return map(v);
        default: throw new Error("unsupported msgpack type 0x" + t.toString(16));
      }
    }
    return read();
  }
  SC.unpack = unpack;

  /** Little-endian int64s (steps, integer values) as numbers (exact below 2^53). */
  function int64s(buffer) {
    const words = new Uint32Array(buffer);
    const out = new Float64Array(words.length / 2);
    for (let i = 0; i < out.length; i++) {
      const lo = words[2 * i], hi = words[2 * i + 1] | 0;
      out[i] = hi * 4294967296 + lo;
    }
    return out;
  }

  /** One column [kind, steps blob, values blob] as {steps, values}. */
  SC.column = function (triple) {
    const [kind, stepsBlob, valuesBlob] = triple;
    const head = new Uint8Array(stepsBlob, 0, 1)[0];
    let steps;
    if (head === 0x41) {
      // "A": start, stride, count (an arithmetic progression)
      const [start, stride, n] = int64s(stepsBlob.slice(1));
      steps = new Float64Array(n);
      for (let i = 0; i < n; i++) steps[i] = start + stride * i;
    } else {
      steps = int64s(stepsBlob.slice(1));
    }
    let values;
    if (kind === "d") values = new Float64Array(valuesBlob);
    else if (kind === "q") values = int64s(valuesBlob);
    else values = unpack(valuesBlob);
    return { steps: steps, values: values };
  };

  /** POST/GET a history route for its msgpack answer; columns decoded, one level of
   * nesting ({key: column} or {run: {key: column}}) as the route answers. */
  SC.fetchColumns = async function (path, json) {
    const opts = {
      method: json ? "POST" : "GET",
      credentials: "same-origin",
      headers: { accept: "application/x-msgpack" },
    };
    if (json) {
      opts.headers["content-type"] = "application/json";
      const meta = document.querySelector('meta[name="csrf-token"]');
      opts.headers["x-csrf-token"] = meta ? meta.content : "";
      opts.body = JSON.stringify(json);
    }
    const response = await fetch(path, opts);
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        message = (await response.json()).message || message;
      } catch (e) {
        /* not JSON */
      }
      throw new Error(message);
    }
    const body = unpack(await response.arrayBuffer());
    const decode = function (node) {
      const out = {};
      for (const [k, v] of Object.entries(node || {})) {
        out[k] = Array.isArray(v) ? SC.column(v) : decode(v);
      }
      return out;
    };
    return decode(body);
  };

  /** Short number labels: 1234567 -> 1.23M, 0.000123 -> 1.23e-4. */
  SC.fmt = function (v) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e15)) return v.toExponential(2);
    if (a >= 1e9) return +(v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return +(v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + "k";
    return String(+v.toPrecision(4));
  };

  /** Seconds as 1h 2m, 3m 20s, 4.5s. */
  SC.duration = function (s) {
    if (s === null || s === undefined || !isFinite(s)) return "";
    const neg = s < 0 ? "-" : "";
    s = Math.abs(s);
    if (s < 60) return neg + +s.toFixed(s < 10 ? 1 : 0) + "s";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.round(s % 60);
    if (h) return neg + h + "h" + (m ? " " + m + "m" : "");
    return neg + m + "m" + (sec ? " " + sec + "s" : "");
  };

  function formatX(kind, v) {
    if (kind === "runtime") return SC.duration(v);
    if (kind === "time") return new Date(v * 1000).toLocaleString();
    return SC.fmt(Math.round(v));
  }
  SC.formatX = formatX;

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function span(text, color) {
    const el = document.createElement("span");
    el.textContent = text;
    if (color) {
      el.className = "swatch";
      el.style.setProperty("--swatch", color);
    }
    return el;
  }

  /**
   * A chart in ``figure`` (holding a .chart-plot and a .chart-readout element).
   * opts: labels (series names), colors, xKind ("step", "runtime" or "time"),
   * log, smoothing (0..0.99), rawFaint (draw the raw lines under smoothed ones),
   * onZoom(xmin, xmax) and onReset() (a drag and a double-click on the plot).
   */
  function Chart(figure, opts) {
    this.figure = figure;
    this.plot = figure.querySelector(".chart-plot");
    this.readout = figure.querySelector(".chart-readout");
    this.opts = Object.assign(
      { labels: [""], colors: null, xKind: "step", log: false, smoothing: 0, rawFaint: true },
      opts || {}
    );
    this.x = [];
    this.ys = [];
    this.hidden = new Set();
    this.focused = null;
    this.u = null;
    this.zoom = null;
    this.draws = 0;
    const self = this;
    if (window.ResizeObserver) {
      this.resizer = new ResizeObserver(function () {
        if (self.u && self.plot.clientWidth && Math.abs(self.u.width - self.plot.clientWidth) > 2)
          self.u.setSize({ width: self.plot.clientWidth, height: HEIGHT });
      });
      this.resizer.observe(this.plot);
    }
  }

  Chart.prototype.colorOf = function (i) {
    return this.opts.colors ? this.opts.colors[i] : SC.color(i);
  };

  /** uPlot series/data layout: per logical series, [raw faint?, main]. */
  Chart.prototype.layout = function () {
    const w = this.opts.smoothing;
    const faint = w > 0 && this.opts.rawFaint;
    const series = [{}];
    const map = []; // logical index -> [uPlot indices]
    const data = [this.x];
    const log = this.opts.log;
    const positive = function (arr) {
      if (!log) return arr;
      const out = new Array(arr.length);
      for (let i = 0; i < arr.length; i++) out[i] = arr[i] !== null && arr[i] > 0 ? arr[i] : null;
      return out;
    };
    this.smoothed = [];
    for (let i = 0; i < this.ys.length; i++) {
      const color = this.colorOf(i);
      const raw = positive(this.ys[i]);
      const smooth = w > 0 ? positive(SC.ema(this.ys[i], w)) : raw;
      this.smoothed.push(smooth);
      const idx = [];
      const show = !this.hidden.has(i);
      if (faint) {
        series.push({
          label: this.opts.labels[i] + " (raw)",
          stroke: SC.alpha(color, 0.28),
          width: 1,
          spanGaps: true,
          show: show,
          points: { show: false },
        });
        data.push(raw);
        idx.push(series.length - 1);
      }
      series.push({
        label: this.opts.labels[i],
        stroke: color,
        width: this.ys.length > 50 ? 1 : 1.5,
        spanGaps: true,
        show: show,
        points: { show: this.x.length < 40 && this.ys.length < 10 },
      });
      data.push(smooth);
      idx.push(series.length - 1);
      map.push(idx);
    }
    return { series: series, data: data, map: map };
  };

  Chart.prototype.build = function () {
    if (this.u) {
      this.u.destroy();
      this.u = null;
    }
    const self = this;
    const lay = this.layout();
    this.map = lay.map;
    const fg = cssVar("--muted", "#5d6875");
    const grid = cssVar("--line", "#dfe3e8");
    const kind = this.opts.xKind;
    const axisFont = "11px system-ui, sans-serif";
    const opts = {
      width: Math.max(200, this.plot.clientWidth || 400),
      height: HEIGHT,
      legend: { show: false },
      focus: { alpha: this.ys.length > 1 ? 0.35 : 1 },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: { dblclick: function () { return null; } },
        focus: { prox: this.ys.length > 1 ? 20 : -1 },
        points: { size: 6 },
      },
      scales: {
        x: { time: kind === "time" },
        y: this.opts.log ? { distr: 3, log: 10 } : { distr: 1 },
      },
      axes: [
        {
          stroke: fg,
          font: axisFont,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          values:
            kind === "time"
              ? undefined
              : function (u, splits) { return splits.map(function (v) { return formatX(kind, v); }); },
        },
        {
          stroke: fg,
          font: axisFont,
          size: 54,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          values: function (u, splits) { return splits.map(SC.fmt); },
        },
      ],
      series: lay.series,
      hooks: {
        setSelect: [
          function (u) {
            const sel = u.select;
            if (sel.width < 4) return;
            const lo = u.posToVal(sel.left, "x");
            const hi = u.posToVal(sel.left + sel.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (self.opts.onZoom) self.opts.onZoom(lo, hi);
            else u.setScale("x", { min: lo, max: hi });
          },
        ],
        setCursor: [function (u) { self.showReadout(u.cursor.idx); }],
        setSeries: [
          function (u, sidx, o) {
            if (o && o.focus !== undefined) {
              self.focused = sidx;
              self.showReadout(u.cursor.idx);
            }
          },
        ],
        draw: [function () { self.afterDraw(); }],
      },
    };
    this.u = new window.uPlot(opts, lay.data, this.plot);
    this.u.over.addEventListener("dblclick", function () {
      if (self.opts.onReset) self.opts.onReset();
    });
    this.u.over.title = "Drag to zoom, double-click to reset";
    if (this.zoom) this.u.setScale("x", { min: this.zoom[0], max: this.zoom[1] });
  };

  /** New data: ``x`` (numbers, increasing) and ``ys`` (one array per series). ``zoom``:
   * the x range to show ([min, max]), else all of it. */
  Chart.prototype.setData = function (x, ys, zoom) {
    this.x = x;
    this.ys = ys;
    this.zoom = zoom || null;
    this.build();
  };

  /** Change options (smoothing, log, xKind, labels...) and redraw. */
  Chart.prototype.update = function (changes) {
    Object.assign(this.opts, changes);
    if (this.ys.length || this.u) this.build();
  };

  /** Show or hide logical series ``i`` (compare: toggling a run). */
  Chart.prototype.setVisible = function (i, show) {
    if (show) this.hidden.delete(i);
    else this.hidden.add(i);
    if (!this.u || !this.map) return;
    this.u.batch(() => {
      for (const s of this.map[i]) this.u.setSeries(s, { show: show }, false);
    });
    this.afterDraw();
  };

  Chart.prototype.logicalOf = function (sidx) {
    if (!this.map) return null;
    for (let i = 0; i < this.map.length; i++) if (this.map[i].indexOf(sidx) >= 0) return i;
    return null;
  };

  Chart.prototype.showReadout = function (idx) {
    const box = this.readout;
    if (!box) return;
    box.replaceChildren();
    const kind = this.opts.xKind;
    const n = this.ys.length;
    if (idx === null || idx === undefined || idx < 0 || !this.x.length) {
      if (n === 1 && this.x.length) {
        const last = lastValue(this.ys[0]);
        if (last !== null) box.append(span("last " + SC.fmt(last)));
      }
      return;
    }
    box.append(span(axisName(kind) + " " + formatX(kind, this.x[idx])));
    const focus = this.focused !== null ? this.logicalOf(this.focused) : null;
    let order = [];
    if (focus !== null && n > 1) order = [focus];
    else {
      for (let i = 0; i < n; i++) if (!this.hidden.has(i) && this.smoothed[i][idx] !== null) order.push(i);
      if (n > 1) order.sort((a, b) => this.smoothed[b][idx] - this.smoothed[a][idx]);
      order = order.slice(0, 6);
    }
    for (const i of order) {
      let text = (n > 1 ? this.opts.labels[i] + " " : "") + SC.fmt(this.smoothed[i][idx]);
      if (this.opts.smoothing > 0 && this.ys[i][idx] !== null) text += " (raw " + SC.fmt(this.ys[i][idx]) + ")";
      box.append(span(text, this.colorOf(i)));
    }
  };

  function axisName(kind) {
    return kind === "runtime" ? "time" : kind === "time" ? "at" : "step";
  }

  function lastValue(arr) {
    for (let i = arr.length - 1; i >= 0; i--) if (arr[i] !== null) return arr[i];
    return null;
  }

  /** Record what is drawn on the figure (tests and the page read it). */
  Chart.prototype.afterDraw = function () {
    const f = this.figure;
    let points = 0;
    let series = 0;
    for (let i = 0; i < this.ys.length; i++) {
      if (this.hidden.has(i)) continue;
      let c = 0;
      const y = this.ys[i];
      for (let k = 0; k < y.length; k++) if (y[k] !== null) c++;
      points += c;
      if (c) series++;
    }
    this.draws += 1;
    f.dataset.points = String(points);
    f.dataset.series = String(series);
    f.dataset.scale = this.u && this.u.scales.y.distr === 3 ? "log" : "linear";
    f.dataset.smoothing = String(this.opts.smoothing);
    f.dataset.xKind = this.opts.xKind;
    if (this.u) {
      f.dataset.xMin = String(this.u.scales.x.min);
      f.dataset.xMax = String(this.u.scales.x.max);
    }
    f.dataset.zoomed = this.zoom ? "1" : "0";
    const title = f.querySelector("h3");
    this.plot.setAttribute("role", "img");
    this.plot.setAttribute(
      "aria-label",
      "Line chart of " + (title ? title.textContent : "") + ": " + series + " series, " + points + " points"
    );
    f.dataset.draws = String(this.draws);
    if (f.dataset.drawn !== "1") f.dataset.drawnAt = String(Math.round(performance.now()));
    f.dataset.drawn = "1";
    if (!this.readout.childNodes.length) this.showReadout(null);
  };

  Chart.prototype.destroy = function () {
    if (this.resizer) this.resizer.disconnect();
    if (this.u) this.u.destroy();
    this.u = null;
  };

  /** A message in place of a chart ("no data", an error). */
  SC.message = function (figure, text, isError) {
    const plot = figure.querySelector(".chart-plot");
    const p = document.createElement("p");
    p.className = isError ? "chart-message error" : "chart-message muted";
    p.textContent = text;
    plot.replaceChildren(p);
    figure.dataset.drawn = "1";
    figure.dataset.points = "0";
    figure.dataset.series = "0";
  };

  /** Call ``draw(figure)`` once for each figure when it first comes near the viewport. */
  SC.lazy = function (figures, draw) {
    if (!window.IntersectionObserver) {
      figures.forEach(draw);
      return null;
    }
    const io = new IntersectionObserver(
      function (entries) {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          io.unobserve(e.target);
          draw(e.target);
        }
      },
      { rootMargin: "300px 0px" }
    );
    figures.forEach(function (f) { io.observe(f); });
    return io;
  };

  /** Call ``fn(items)`` with everything ``push``ed during the same task, in batches of
   * at most ``size`` (one request per batch instead of one per chart). */
  SC.batcher = function (fn, size) {
    let queue = [];
    let scheduled = false;
    return function push(item) {
      queue.push(item);
      if (scheduled) return;
      scheduled = true;
      setTimeout(function () {
        scheduled = false;
        const all = queue;
        queue = [];
        for (let i = 0; i < all.length; i += size) fn(all.slice(i, i + size));
      }, 0);
    };
  };

  /** Wire the page's smoothing slider (#smoothing, its value in #smoothing-value) and log
   * scale checkbox (#log-scale) to ``view`` and to every chart ``charts()`` yields;
   * slider moves are coalesced into one redraw per frame. */
  SC.bindViewControls = function (view, charts) {
    const smoothing = document.getElementById("smoothing");
    const shown = document.getElementById("smoothing-value");
    const log = document.getElementById("log-scale");
    let pending = false;
    smoothing.addEventListener("input", function () {
      view.smoothing = Number(smoothing.value);
      shown.textContent = smoothing.value;
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () {
        pending = false;
        for (const chart of charts()) chart.update({ smoothing: view.smoothing });
      });
    });
    log.addEventListener("change", function () {
      view.log = log.checked;
      for (const chart of charts()) chart.update({ log: view.log });
    });
  };

  /** The "charts need `make ui`" notice, when uPlot did not load. */
  SC.missing = function (where) {
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent =
      "The chart library is missing from this server: run `make ui` (it copies uPlot into " +
      "stemma/ui/static/vendor/), then reload.";
    where.replaceChildren(p);
  };

  SC.Chart = Chart;
  SC.HEIGHT = HEIGHT;
  window.StemmaCharts = SC;
})();
