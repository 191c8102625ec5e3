// Overview: totals, throughput charts (charts.js), every queue (counts per state, paused, oldest runnable age,
// runnable jobs no live worker can claim, pause / resume), the live workers (with
// the kinds each claims) and the latest jobs.

import { get, post } from "./api.js";
import {
  STATES,
  STATE_LABELS,
  confirmAction,
  duration,
  emptyRow,
  h,
  notify,
  problemText,
  reconcile,
  sig,
  swap,
  when,
} from "./ui.js";
import { jobHead, jobRow } from "./jobs.js";
import { chartsSection } from "./charts.js";

const LATEST = 10;
const UNCLAIMABLE_HELP = "Runnable jobs no live worker can run: none registers their kind for this queue";
const QUEUE_COLUMNS = 5 + STATES.length;

export function overviewView(root, ctx) {
  let totals = h("div");
  const queueBody = h("tbody");
  const workerBody = h("tbody");
  const latestBody = h("tbody");
  const workerCount = h("span", { class: "count" });
  const charts = chartsSection();
  charts.onChange(() => ctx.refresh());

  root.append(
    h("h1", {}, "Overview"),
    totals,
    charts.element,
    h(
      "section",
      { "aria-labelledby": "queues-title" },
      h("h2", { id: "queues-title" }, "Queues"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "grid", id: "queues" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Queue"),
              h("th", { scope: "col" }, "State"),
              STATES.map((s) => h("th", { scope: "col", class: "num" }, STATE_LABELS[s])),
              h("th", { scope: "col", class: "num", title: "Age of the oldest job that could run now" }, "Oldest runnable"),
              h("th", { scope: "col", class: "num", title: UNCLAIMABLE_HELP }, "Unclaimable"),
              h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
            ),
          ),
          queueBody,
        ),
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "workers-title" },
      h("h2", { id: "workers-title" }, "Workers ", workerCount),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "grid", id: "workers" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Worker", "Host", "PID", "Queues", "Kinds", "In flight", "Version", "Started", "Last heartbeat"].map((t) =>
                h("th", { scope: "col" }, t),
              ),
            ),
          ),
          workerBody,
        ),
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "latest-title" },
      h("h2", { id: "latest-title" }, "Latest jobs ", h("a", { href: "#/jobs", class: "small" }, "all jobs →")),
      h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "latest" }, jobHead(), latestBody)),
    ),
  );

  async function togglePause(queue) {
    const verb = queue.paused ? "resume" : "pause";
    const ok = await confirmAction({
      title: `${queue.paused ? "Resume" : "Pause"} queue “${queue.name}”?`,
      body: queue.paused
        ? "Workers will claim its jobs again."
        : "Workers stop claiming its jobs. Running jobs finish, and enqueueing still works.",
      confirm: queue.paused ? "Resume queue" : "Pause queue",
    });
    if (!ok) return;
    try {
      const { data } = await post(`queues/${encodeURIComponent(queue.name)}/${verb}`);
      notify("ok", `Queue “${data.name}” ${data.paused ? "paused" : "resumed"}.`);
    } catch (error) {
      notify("error", `Could not ${verb} queue “${queue.name}”: ${problemText(error)}`);
    }
    ctx.refresh();
  }

  function countsTitle(queue) {
    return queue.counts_exact === false ? "estimated count" : "exact count, kept as jobs change";
  }

  function queueRow(queue) {
    const counts = queue.counts || {};
    const age = h("td", { class: "num age" }, duration(queue.oldest_runnable_age_seconds));
    const row = h(
      "tr",
      { dataset: { key: queue.name, queue: queue.name, sig: sig([queue.name, queue.paused, counts, queue.counts_exact, queue.unclaimable]) } },
      h("th", { scope: "row" }, h("a", { href: `#/jobs?queue=${encodeURIComponent(queue.name)}` }, queue.name)),
      h("td", {}, queue.paused ? h("span", { class: "badge paused" }, "paused") : h("span", { class: "badge active" }, "active")),
      STATES.map((s) => {
        const n = counts[s] || 0;
        const filtered = `#/jobs?queue=${encodeURIComponent(queue.name)}&status=${s}`;
        // Counts are exact (counters kept as jobs change); "≈" marks an estimate.
        const shown = (queue.counts_exact === false ? "≈" : "") + n.toLocaleString();
        return h("td", { class: `num${n ? "" : " muted"}`, dataset: { state: s }, title: countsTitle(queue) }, n ? h("a", { href: filtered }, shown) : "0");
      }),
      age,
      h(
        "td",
        { class: `num unclaimable${queue.unclaimable ? " alert" : " muted"}`, title: queue.unclaimable ? UNCLAIMABLE_HELP : "" },
        (queue.unclaimable || 0).toLocaleString(),
      ),
      h(
        "td",
        { class: "actions" },
        h(
          "button",
          { type: "button", class: queue.paused ? "" : "warn", onclick: () => togglePause(queue) },
          queue.paused ? "Resume" : "Pause",
        ),
      ),
    );
    return row;
  }

  function workerRow(w) {
    const load = w.concurrency ? Math.min(1, w.in_flight / w.concurrency) : 0;
    const meter = h("meter", { min: 0, max: 1, value: load.toFixed(2), title: `${w.in_flight} of ${w.concurrency}` });
    return h(
      "tr",
      { dataset: { key: w.id, sig: sig(w) } },
      h("td", { class: "mono" }, w.id),
      h("td", {}, w.host),
      h("td", { class: "num" }, w.pid),
      h("td", {}, w.queues && w.queues.length ? w.queues.join(", ") : h("span", { class: "muted" }, "all")),
      h("td", { class: "kinds" }, w.kinds ? w.kinds.join(", ") || h("span", { class: "muted" }, "none") : h("span", { class: "muted" }, "all")),
      h("td", { class: "num" }, meter, ` ${w.in_flight}/${w.concurrency}`),
      h("td", {}, w.version),
      h("td", {}, when(w.started_at)),
      h("td", {}, when(w.last_heartbeat_at)),
    );
  }

  function totalCards(queues, workers) {
    const sum = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const q of queues) for (const s of STATES) sum[s] += (q.counts || {})[s] || 0;
    const paused = queues.filter((q) => q.paused).length;
    const card = (label, value, cls, href) =>
      h("a", { class: `card ${cls}`, href }, h("span", { class: "card-value" }, value.toLocaleString()), h("span", { class: "card-label" }, label));
    return h(
      "div",
      { class: "cards", id: "totals", dataset: { sig: sig([sum, paused, workers.length]) } },
      STATES.map((s) => card(STATE_LABELS[s], sum[s], `state-${s}`, `#/jobs?status=${s}`)),
      card("workers", workers.length, "workers", "#/"),
      card(paused === 1 ? "paused queue" : "paused queues", paused, paused ? "paused" : "", "#/"),
    );
  }

  async function refresh() {
    const [q, w, j] = await Promise.all([get("queues"), get("workers"), get("jobs", { limit: LATEST, summary: true })]);
    const queues = q.queues;
    totals = swap(totals, totalCards(queues, w.workers));
    const rows = reconcile(
      queueBody,
      queues.length ? queues.map(queueRow) : [emptyRow(QUEUE_COLUMNS, "No queues yet. Enqueue a job (jobq enqueue KIND) and it shows here.")],
    );
    // The age moves with the clock: update the text, not the row.
    rows.forEach((row, i) => {
      const cell = row.querySelector(".age");
      if (cell) cell.textContent = duration(queues[i].oldest_runnable_age_seconds);
    });
    workerCount.textContent = `(${w.workers.length})`;
    reconcile(
      workerBody,
      w.workers.length ? w.workers.map(workerRow) : [emptyRow(9, "No live workers. Start some with jobq worker, or jobq serve.")],
    );
    reconcile(latestBody, j.jobs.length ? j.jobs.map((job) => jobRow(job)) : [emptyRow(8, "No jobs yet.")]);
    await charts.refresh(queues);
  }

  return { refresh };
}
