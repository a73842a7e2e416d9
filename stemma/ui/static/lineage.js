// The lineage graph of an artifact version: runs and versions from the page's data block
// ("lineage-data": {root, nodes: [{id, kind, label, sub, href, aria, focus}], edges:
// [{source, target}]}), laid out in layers (sources left, sinks right) and drawn as an
// SVG whose nodes are links (focusable, labelled) to the version's lineage or the run.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 200; // node width
  const H = 44; // node height
  const COL = 270; // distance between layers
  const ROW = 60; // distance between nodes of a layer
  const PAD = 24;

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  /** Cut `text` to about `max` characters (the full text stays in the tooltip). */
  function clip(text, max) {
    text = String(text || "");
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  /** Layers and in-layer order: longest path from the sources over the graph with its
   *  cycles broken (depth-first), sources pulled next to what they feed, then a few
   *  barycentre sweeps to untangle the edges. Returns {layer, order, layers}. */
  function layout(n, edges) {
    const succ = Array.from({ length: n }, () => []);
    const pred = Array.from({ length: n }, () => []);
    // Break cycles: drop the edges that close one in a depth-first walk.
    const state = new Uint8Array(n); // 0 new, 1 on the stack, 2 done
    const raw = Array.from({ length: n }, () => []);
    for (const [s, t] of edges) raw[s].push(t);
    for (let start = 0; start < n; start++) {
      if (state[start]) continue;
      const stack = [[start, 0]];
      state[start] = 1;
      while (stack.length) {
        const top = stack[stack.length - 1];
        const [v, i] = top;
        if (i < raw[v].length) {
          top[1]++;
          const t = raw[v][i];
          if (state[t] === 1) continue; // a back edge: left out of the layering
          succ[v].push(t);
          pred[t].push(v);
          if (state[t] === 0) {
            state[t] = 1;
            stack.push([t, 0]);
          }
        } else {
          state[v] = 2;
          stack.pop();
        }
      }
    }
    // Topological order (Kahn), then longest path.
    const indeg = pred.map((p) => p.length);
    const topo = [];
    const queue = [];
    for (let v = 0; v < n; v++) if (!indeg[v]) queue.push(v);
    while (queue.length) {
      const v = queue.shift();
      topo.push(v);
      for (const t of succ[v]) if (--indeg[t] === 0) queue.push(t);
    }
    const layer = new Array(n).fill(0);
    for (const v of topo) for (const t of succ[v]) layer[t] = Math.max(layer[t], layer[v] + 1);
    // A source sits just left of the first node it feeds, not at the far left.
    for (let k = topo.length - 1; k >= 0; k--) {
      const v = topo[k];
      if (pred[v].length || !succ[v].length) continue;
      layer[v] = Math.min(...succ[v].map((t) => layer[t])) - 1;
    }
    const depth = Math.max(0, ...layer) + 1;
    const layers = Array.from({ length: depth }, () => []);
    for (const v of topo) layers[layer[v]].push(v);
    const order = new Array(n).fill(0);
    const renumber = (l) => l.forEach((v, i) => (order[v] = i));
    layers.forEach(renumber);
    const centre = (l) => (l.length - 1) / 2;
    // Barycentre sweeps: left to right by predecessors, right to left by successors.
    const sweep = (idx, neighbours) => {
      const l = layers[idx];
      const key = new Map();
      for (const v of l) {
        const ns = neighbours[v];
        if (!ns.length) {
          key.set(v, order[v] - centre(l));
          continue;
        }
        let sum = 0;
        for (const u of ns) sum += order[u] - centre(layers[layer[u]]);
        key.set(v, sum / ns.length);
      }
      l.sort((x, y) => key.get(x) - key.get(y) || order[x] - order[y]);
      renumber(l);
    };
    for (let round = 0; round < 4; round++) {
      for (let i = 1; i < depth; i++) sweep(i, pred);
      for (let i = depth - 2; i >= 0; i--) sweep(i, succ);
    }
    return { layer, order, layers };
  }

  function draw(box, data) {
    const nodes = data.nodes || [];
    const index = new Map(nodes.map((node, i) => [node.id, i]));
    const edges = [];
    for (const e of data.edges || []) {
      const s = index.get(e.source);
      const t = index.get(e.target);
      if (s !== undefined && t !== undefined && s !== t) edges.push([s, t]);
    }
    const { layer, order, layers } = layout(nodes.length, edges);
    const tallest = Math.max(1, ...layers.map((l) => l.length));
    const x = (v) => PAD + layer[v] * COL;
    const y = (v) => PAD + ((tallest - layers[layer[v]].length) * ROW) / 2 + order[v] * ROW;
    const width = PAD * 2 + (layers.length - 1) * COL + W;
    const height = PAD * 2 + (tallest - 1) * ROW + H;

    const svg = el("svg", {
      class: "lineage",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "group",
      "aria-label": `Lineage graph: ${nodes.length} nodes, ${edges.length} edges`,
    });
    const defs = el("defs", {}, svg);
    const marker = el(
      "marker",
      { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7 },
      defs
    );
    marker.setAttribute("orient", "auto");
    el("path", { d: "M0,0 L10,5 L0,10 z" }, marker);

    const edgeLayer = el("g", { class: "edges" }, svg);
    const byNode = nodes.map(() => []);
    for (const [s, t] of edges) {
      const x1 = x(s) + W;
      const y1 = y(s) + H / 2;
      const x2 = x(t);
      const y2 = y(t) + H / 2;
      const bend = Math.max(40, Math.abs(x2 - x1) / 2);
      const path = el(
        "path",
        {
          class: "edge",
          d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 1},${y2}`,
          "marker-end": "url(#arrow)",
          "data-source": nodes[s].id,
          "data-target": nodes[t].id,
        },
        edgeLayer
      );
      byNode[s].push(path);
      byNode[t].push(path);
    }

    const nodeLayer = el("g", { class: "nodes" }, svg);
    // In reading order (by column, then down it), so Tab walks the graph left to right.
    const reading = nodes.map((_, v) => v);
    reading.sort((a, b) => layer[a] - layer[b] || order[a] - order[b]);
    reading.forEach((v) => {
      const node = nodes[v];
      const classes = ["node", node.kind === "run" ? "run" : "art"];
      if (node.focus) classes.push("focus");
      if (node.state === "deleted" || node.state === "failed" || node.state === "crashed") {
        classes.push("state-" + node.state);
      }
      const link = el(
        "a",
        {
          href: node.href,
          class: classes.join(" "),
          "aria-label": node.aria || node.label,
          "data-id": node.id,
          transform: `translate(${x(v)},${y(v)})`,
        },
        nodeLayer
      );
      if (node.focus) link.setAttribute("aria-current", "page");
      el("title", {}, link).textContent = node.label + (node.sub ? "\n" + node.sub : "");
      el("rect", { width: W, height: H, rx: node.kind === "run" ? 22 : 5 }, link);
      const label = el("text", { x: 12, y: 18, class: "label" }, link);
      label.textContent = clip(node.label, 27);
      const sub = el("text", { x: 12, y: 34, class: "sub" }, link);
      sub.textContent = clip(node.sub, 32);
      const light = (on) => byNode[v].forEach((p) => p.classList.toggle("hl", on));
      link.addEventListener("mouseenter", () => light(true));
      link.addEventListener("mouseleave", () => light(false));
      link.addEventListener("focus", () => light(true));
      link.addEventListener("blur", () => light(false));
    });

    box.replaceChildren(svg);
    // Bring the version this page is about into view.
    const focus = nodes.findIndex((node) => node.focus);
    if (focus >= 0) {
      box.scrollLeft = Math.max(0, x(focus) + W / 2 - box.clientWidth / 2);
      box.scrollTop = Math.max(0, y(focus) + H / 2 - box.clientHeight / 2);
    }
  }

  function start() {
    const box = document.getElementById("lineage-graph");
    const data = window.Stemma && window.Stemma.data("lineage-data");
    if (box && data) draw(box, data);
  }

  // For tests and other pages: draw(box, data) and layout(n, [[source, target], ...]).
  if (window.Stemma) window.Stemma.lineage = { draw, layout };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
