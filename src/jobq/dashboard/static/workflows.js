// Workflows: the list (newest first, jobs per state), and one workflow's graph:
// a layered drawing in plain SVG (each node after the nodes it waits for, coloured
// by its job's state, linked to the job), its nodes as a table, and cancel.

import { get, post } from "./api.js";
import { badge, confirmAction, emptyRow, h, notify, problemText, reconcile, shortId, sig, swap, when } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
// Larger graphs are listed, not drawn: thousands of boxes help nobody read one.
export const MAX_DRAWN = 400;
const NODE_W = 132;
const NODE_H = 34;
const GAP_X = 24;
const GAP_Y = 46;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function counts(c) {
  return Object.entries(c)
    .sort()
    .map(([state, n]) => h("span", { class: "wf-count" }, badge(state), ` ${n}`));
}

// Layer of a node: 0 without `after`, else one more than its deepest parent.
// Within a layer, nodes sit in the mean position of their parents (one pass of
// the barycentre heuristic), which keeps most edges short and uncrossed.
export function layout(nodes) {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const layer = new Map();
  const visiting = new Set();
  function depth(name) {
    if (layer.has(name)) return layer.get(name);
    if (visiting.has(name)) return 0; // the API refuses cycles; never loop on bad data
    visiting.add(name);
    const node = byName.get(name);
    const d = node && node.after.length ? 1 + Math.max(...node.after.filter((a) => byName.has(a)).map(depth), -1) : 0;
    layer.set(name, d);
    return d;
  }
  nodes.forEach((n) => depth(n.name));
  const layers = [];
  for (const n of nodes) (layers[layer.get(n.name)] ||= []).push(n);
  const x = new Map();
  layers.forEach((row, i) => {
    if (i > 0) {
      const centre = (n) => {
        const xs = n.after.filter((a) => x.has(a)).map((a) => x.get(a));
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
      };
      row.sort((a, b) => centre(a) - centre(b) || a.name.localeCompare(b.name));
    }
    row.forEach((n, j) => x.set(n.name, j));
  });
  const width = Math.max(...layers.map((r) => r.length));
  const pos = new Map();
  layers.forEach((row, i) => {
    const offset = ((width - row.length) * (NODE_W + GAP_X)) / 2;
    row.forEach((n, j) => pos.set(n.name, { x: offset + j * (NODE_W + GAP_X), y: i * (NODE_H + GAP_Y) }));
  });
  return { pos, width, height: layers.length };
}

export function graph(nodes) {
  const { pos, width, height } = layout(nodes);
  const w = width * (NODE_W + GAP_X) - GAP_X + 2;
  const ht = height * (NODE_H + GAP_Y) - GAP_Y + 2;
  const root = s("svg", { id: "workflow-graph", viewBox: `-1 -1 ${w} ${ht}`, width: w, height: ht, role: "img", "aria-label": "The workflow's graph" });
  const edges = s("g", { class: "wf-edges" });
  for (const n of nodes) {
    const to = pos.get(n.name);
    for (const a of n.after) {
      const from = pos.get(a);
      if (!from) continue;
      const x1 = from.x + NODE_W / 2, y1 = from.y + NODE_H, x2 = to.x + NODE_W / 2, y2 = to.y;
      const mid = (y1 + y2) / 2;
      edges.append(s("path", { d: `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`, "data-edge": `${a}->${n.name}` }));
    }
  }
  root.append(edges);
  for (const n of nodes) {
    const p = pos.get(n.name);
    const label = n.name.length > 16 ? `${n.name.slice(0, 15)}…` : n.name;
    const link = s(
      "a",
      { href: `#/jobs/${n.job_id}`, class: `wf-node state-${n.status}`, "data-node": n.name, "data-status": n.status },
      s("title", {}, `${n.name} (${n.kind}): ${n.status}${n.last_error ? ` — ${n.last_error}` : ""}`),
      s("rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 5 }),
      s("text", { x: p.x + NODE_W / 2, y: p.y + 14, "text-anchor": "middle", class: "wf-name" }, label),
      s("text", { x: p.x + NODE_W / 2, y: p.y + 27, "text-anchor": "middle", class: "wf-state" }, n.status.replace("_permanent", "")),
    );
    root.append(link);
  }
  return root;
}

export function workflowsView(root, ctx) {
  const body = h("tbody");
  root.append(
    h("h1", {}, "Workflows"),
    h("p", { class: "hint" }, "Graphs of jobs (workflows and batches), newest first: app.workflow(), app.batch() or POST /v1/workflows."),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid", id: "workflows" },
        h("thead", {}, h("tr", {}, ["Workflow", "Name", "Jobs", "Created", "States"].map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
  );
  async function refresh() {
    const { workflows } = await get("workflows", { limit: 100 });
    reconcile(
      body,
      workflows.length
        ? workflows.map((w) =>
            h(
              "tr",
              { dataset: { key: w.id, sig: sig(w) } },
              h("th", { scope: "row" }, h("a", { href: `#/workflows/${w.id}`, class: "mono", title: w.id }, shortId(w.id))),
              h("td", {}, w.name || ""),
              h("td", { class: "num" }, w.node_count),
              h("td", {}, when(w.created_at)),
              h("td", {}, counts(w.counts)),
            ),
          )
        : [emptyRow(5, "No workflows yet.")],
    );
  }
  return { refresh };
}

export function workflowView(root, ctx, id) {
  let head = h("div");
  let drawing = h("div");
  const body = h("tbody");
  root.append(
    head,
    drawing,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid", id: "workflow-nodes" },
        h("thead", {}, h("tr", {}, ["Node", "Kind", "State", "After", "Error"].map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
  );

  async function cancel(w) {
    const ok = await confirmAction({
      title: `Cancel workflow “${w.name || shortId(w.id)}”?`,
      body: "Every job of it not yet ended is cancelled; running ones are asked to stop.",
      confirm: "Cancel workflow",
    });
    if (!ok) return;
    try {
      const { data } = await post(`workflows/${encodeURIComponent(w.id)}/cancel`);
      notify("ok", `Workflow cancelled: ${data.count} jobs changed.`);
    } catch (error) {
      notify("error", `Could not cancel the workflow: ${problemText(error)}`);
    }
    ctx.refresh();
  }

  async function refresh() {
    const w = await get(`workflows/${encodeURIComponent(id)}`);
    const open = w.node_count - ["succeeded", "failed_permanent", "cancelled"].reduce((t, k) => t + (w.counts[k] || 0), 0);
    head = swap(
      head,
      h(
        "div",
        { dataset: { sig: sig([w.counts, w.name]) } },
        h("h1", {}, "Workflow ", h("span", { class: "mono" }, w.name || shortId(w.id))),
        h("p", {}, `${w.node_count} jobs · created `, when(w.created_at), " · ", counts(w.counts), " ",
          open ? h("button", { type: "button", class: "warn", id: "cancel-workflow", onclick: () => cancel(w) }, "Cancel workflow") : ""),
      ),
    );
    drawing = swap(
      drawing,
      w.nodes.length <= MAX_DRAWN
        ? h("div", { class: "wf-graph", dataset: { sig: sig(w.nodes) } }, graph(w.nodes))
        : h("p", { class: "hint", dataset: { sig: "big" } }, `${w.node_count} jobs: too many to draw (at most ${MAX_DRAWN}); the table lists them.`),
    );
    reconcile(
      body,
      w.nodes.map((n) =>
        h(
          "tr",
          { dataset: { key: n.name, sig: sig(n) } },
          h("th", { scope: "row" }, h("a", { href: `#/jobs/${n.job_id}` }, n.name)),
          h("td", {}, n.kind),
          h("td", {}, badge(n.status)),
          h("td", {}, n.after.join(", ")),
          h("td", { class: "small" }, n.last_error || ""),
        ),
      ),
    );
  }
  return { refresh };
}
