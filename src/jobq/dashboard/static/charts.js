// Throughput charts on the overview, in plain SVG: jobs finished per bucket by
// outcome (stacked bars) and queue depth (lines), over the last hour (a bar a
// minute) or day (a bar per 15 minutes), for every queue or one. The data is
// GET v1/stats/throughput, the per-minute rollup the workers' maintenance
// leader writes, so the charts need no Prometheus. Redrawn only when the data
// changes (swap() compares data-sig), on the overview's own polling.
//
// Every bar is a <g class="bucket"> with a <title> (the numbers, on hover and
// for screen readers) and one <rect data-outcome data-count> per outcome; each
// chart is role="img" with a title and a summary.

import { get } from "./api.js";
import { h, sig, swap } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
export const OUTCOMES = ["succeeded", "retried", "failed_permanent", "cancelled"];
const OUTCOME_LABELS = { succeeded: "succeeded", retried: "retried", failed_permanent: "failed", cancelled: "cancelled" };
const DEPTH = ["waiting", "running"];
const WINDOWS = { "1h": "Last hour", "24h": "Last 24 hours" };
// The drawing's own units; the SVG scales to the width of its frame.
const WIDTH = 720;
const HEIGHT = 160;
const LEFT = 44;
const RIGHT = 8;
const TOP = 10;
const BOTTOM = 22;

let uid = 0;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A round axis maximum at or above `value`: 1, 2, 5 times a power of ten.
export function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function clock(iso, withDay) {
  const options = withDay ? { weekday: "short", hour: "2-digit", minute: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return new Date(iso).toLocaleTimeString(undefined, options);
}

function frame(id, title, summary, max, stats, plot) {
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const y = (v) => TOP + plotHeight - (v / max) * plotHeight;
  const grid = [0, max / 2, max].map((v) =>
    s(
      "g",
      { class: "gridline" },
      s("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y(v), y2: y(v) }),
      s("text", { x: LEFT - 6, y: y(v) + 4, "text-anchor": "end" }, Number.isInteger(v) ? v.toLocaleString() : v.toFixed(1)),
    ),
  );
  const n = stats.buckets.length;
  const step = (WIDTH - LEFT - RIGHT) / n;
  const withDay = stats.window === "24h";
  const ticks = [0, Math.floor(n / 4), Math.floor(n / 2), Math.floor((3 * n) / 4), n - 1].map((i) =>
    s(
      "text",
      { class: "tick", x: LEFT + i * step + step / 2, y: HEIGHT - 6, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle" },
      clock(stats.buckets[i].start, withDay),
    ),
  );
  return s(
    "svg",
    {
      class: "chart",
      id,
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": `${id}-title ${id}-desc`,
      "data-max": max,
    },
    s("title", { id: `${id}-title` }, title),
    s("desc", { id: `${id}-desc` }, summary),
    grid,
    plot({ y, step, plotHeight }),
    ticks,
  );
}

function sum(stats, name) {
  return stats.buckets.reduce((total, b) => total + (b[name] || 0), 0);
}

function throughputChart(stats, scope) {
  const totals = stats.buckets.map((b) => (b.succeeded === null ? 0 : OUTCOMES.reduce((t, o) => t + b[o], 0)));
  const max = niceMax(Math.max(0, ...totals));
  const per = stats.bucket_seconds === 60 ? "minute" : `${stats.bucket_seconds / 60} minutes`;
  const summary = `${WINDOWS[stats.window]}, ${scope}: ` + OUTCOMES.map((o) => `${sum(stats, o).toLocaleString()} ${OUTCOME_LABELS[o]}`).join(", ") + ".";
  return frame(`chart-throughput-${uid}`, `Jobs finished per ${per}, by outcome`, summary, max, stats, ({ y, step }) =>
    stats.buckets.map((b, i) => {
      const x = LEFT + i * step;
      const when = clock(b.start, stats.window === "24h");
      if (b.succeeded === null) {
        return s("g", { class: "bucket pending", "data-start": b.start }, s("title", {}, `${when}: not counted yet`));
      }
      let base = 0;
      const rects = OUTCOMES.map((o) => {
        const count = b[o];
        const top = y(base + count);
        const rect = s("rect", {
          class: `bar-${o}`,
          x: x + step * 0.1,
          width: step * 0.8,
          y: top,
          height: y(base) - top,
          "data-outcome": o,
          "data-count": count,
        });
        base += count;
        return rect;
      });
      const text = `${when}: ` + OUTCOMES.map((o) => `${b[o].toLocaleString()} ${OUTCOME_LABELS[o]}`).join(", ");
      return s("g", { class: "bucket", "data-start": b.start, "data-total": base }, s("title", {}, text), rects);
    }),
  );
}

function depthChart(stats, scope) {
  const peaks = stats.buckets.flatMap((b) => DEPTH.map((d) => b[d] || 0));
  const max = niceMax(Math.max(0, ...peaks));
  const sampled = stats.buckets.filter((b) => b.waiting !== null);
  const last = sampled[sampled.length - 1];
  const summary = last
    ? `${WINDOWS[stats.window]}, ${scope}: latest ${last.waiting.toLocaleString()} waiting and ${last.running.toLocaleString()} running; peak ${Math.max(...sampled.map((b) => b.waiting)).toLocaleString()} waiting.`
    : `${WINDOWS[stats.window]}, ${scope}: no depth sampled (no worker running).`;
  return frame(`chart-depth-${uid}`, "Queue depth: jobs waiting and running", summary, max, stats, ({ y, step, plotHeight }) => {
    const lines = DEPTH.map((d) => {
      // A bucket with no sample breaks the line rather than dropping it to zero.
      const runs = [[]];
      stats.buckets.forEach((b, i) => {
        if (b[d] === null) {
          if (runs[runs.length - 1].length) runs.push([]);
        } else runs[runs.length - 1].push(`${(LEFT + i * step + step / 2).toFixed(1)},${y(b[d]).toFixed(1)}`);
      });
      return runs
        .filter((r) => r.length)
        .map((r) => (r.length === 1 ? s("circle", { class: `line-${d}`, cx: r[0].split(",")[0], cy: r[0].split(",")[1], r: 2 }) : s("polyline", { class: `line-${d}`, points: r.join(" ") })));
    });
    const hovers = stats.buckets.map((b, i) =>
      s(
        "rect",
        { class: "hover", x: LEFT + i * step, width: step, y: TOP, height: plotHeight, "data-start": b.start, "data-waiting": b.waiting, "data-running": b.running },
        s("title", {}, `${clock(b.start, stats.window === "24h")}: ` + (b.waiting === null ? "not sampled" : `${b.waiting.toLocaleString()} waiting, ${b.running.toLocaleString()} running`)),
      ),
    );
    return [lines, hovers];
  });
}

function legend(names, labels, prefix) {
  return h(
    "ul",
    { class: "legend" },
    names.map((n) => h("li", {}, h("span", { class: `swatch ${prefix}-${n}`, "aria-hidden": "true" }), labels[n] || n)),
  );
}

// The charts' section; refresh(queues) redraws from the API (queues: the
// overview's list, for the queue picker).
export function chartsSection() {
  let windowName = "1h";
  let queue = "";
  let onChange = () => {};
  const picker = h("select", { id: "chart-queue", onchange: () => {
    queue = picker.value;
    onChange();
  } }, h("option", { value: "" }, "All queues"));
  const buttons = Object.keys(WINDOWS).map((w) =>
    h(
      "button",
      {
        type: "button",
        "data-window": w,
        "aria-pressed": String(w === windowName),
        onclick: () => {
          windowName = w;
          for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.window === w));
          onChange();
        },
      },
      w,
    ),
  );
  let body = h("div", { class: "charts-body" }, h("p", { class: "muted" }, "Loading…"));
  const section = h(
    "section",
    { "aria-labelledby": "charts-title", id: "charts" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { id: "charts-title" }, "Throughput"),
      h(
        "div",
        { class: "chart-controls" },
        h("span", { role: "group", "aria-label": "Chart window", class: "toggle" }, buttons),
        h("label", { for: "chart-queue", class: "sr-only" }, "Queue"),
        picker,
      ),
    ),
    body,
  );

  function pickQueues(queues) {
    const names = ["", ...queues.map((q) => q.name)];
    if (queue && !names.includes(queue)) names.push(queue);
    const have = [...picker.options].map((o) => o.value);
    if (sig(have) === sig(names)) return;
    picker.replaceChildren(...names.map((n) => h("option", { value: n }, n || "All queues")));
    picker.value = queue;
  }

  async function refresh(queues) {
    pickQueues(queues);
    const stats = await get("stats/throughput", { window: windowName, queue });
    uid += 1;
    const scope = queue ? `queue ${queue}` : "all queues";
    const fresh = h(
      "div",
      { class: "charts-body", dataset: { sig: sig(stats), window: stats.window, queue: stats.queue || "" } },
      h(
        "figure",
        { class: "chart-panel" },
        h("figcaption", {}, "Finished", legend(OUTCOMES, OUTCOME_LABELS, "bar")),
        throughputChart(stats, scope),
      ),
      h(
        "figure",
        { class: "chart-panel" },
        h("figcaption", {}, "Depth", legend(DEPTH, {}, "line")),
        depthChart(stats, scope),
      ),
      stats.counted_through === null
        ? h("p", { class: "muted small" }, "Nothing counted yet: a running worker's maintenance leader writes these once a minute.")
        : null,
    );
    body = swap(body, fresh);
  }

  return {
    element: section,
    refresh,
    // The overview refreshes at once when the window or the queue changes.
    onChange(handler) {
      onChange = handler;
    },
  };
}
