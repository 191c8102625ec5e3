// The job list: filters (state, queue, kind) in the URL, pages by next_cursor.

import { ApiError, get } from "./api.js";
import { STATES, STATE_LABELS, badge, emptyRow, h, jobLink, problemText, reconcile, sig, swap, when } from "./ui.js";

const PAGE_SIZES = [25, 50, 100, 200];

export function jobHead() {
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      ["Job", "Kind", "Queue", "State", "Attempts", "Priority", "Runs at", "Last error"].map((t) =>
        h("th", { scope: "col", class: t === "Attempts" || t === "Priority" ? "num" : null }, t),
      ),
    ),
  );
}

export function jobRow(job) {
  return h(
    "tr",
    { dataset: { key: job.id, jobId: job.id, sig: sig(job) } },
    h("td", {}, jobLink(job.id)),
    h("td", {}, job.kind),
    h("td", {}, job.queue),
    h("td", {}, badge(job.status), job.cancel_requested && job.status === "running" ? h("span", { class: "small muted" }, " cancelling") : null),
    h("td", { class: "num" }, `${job.attempts}/${job.max_attempts}`),
    h("td", { class: "num" }, job.priority),
    h("td", {}, when(job.run_at)),
    // last_error outlives a later success (SPEC §1): shown, but not as a current failure.
    h("td", { class: `error-cell${job.status === "succeeded" ? " past" : ""}`, title: job.last_error || "" }, job.last_error || ""),
  );
}

// Older pages visited since the filters last changed, so "newer" can go back.
let trail = [];
let trailFilters = null;

function hashFor(filters, cursor) {
  const params = new URLSearchParams();
  for (const s of filters.status) params.append("status", s);
  if (filters.queue) params.set("queue", filters.queue);
  if (filters.kind) params.set("kind", filters.kind);
  if (filters.limit !== 50) params.set("limit", filters.limit);
  if (cursor) params.set("cursor", cursor);
  const query = params.toString();
  return `#/jobs${query ? `?${query}` : ""}`;
}

export function jobsView(root, ctx, params) {
  const filters = {
    status: params.getAll("status").filter((s) => STATES.includes(s)),
    queue: params.get("queue") || "",
    kind: params.get("kind") || "",
    limit: Math.min(500, Math.max(1, Math.trunc(Number(params.get("limit"))) || 50)),
  };
  const cursor = params.get("cursor") || "";
  const key = sig(filters);
  if (key !== trailFilters) {
    trail = [];
    trailFilters = key;
  }

  const go = (changes, nextCursor = "") => {
    location.hash = hashFor({ ...filters, ...changes }, nextCursor);
  };

  const stateBoxes = STATES.map((s) =>
    h(
      "label",
      { class: `chip state-${s}` },
      h("input", {
        type: "checkbox",
        name: "status",
        value: s,
        checked: filters.status.includes(s),
        onchange: () => go({ status: stateBoxes.filter((b) => b.querySelector("input").checked).map((b) => b.querySelector("input").value) }),
      }),
      STATE_LABELS[s],
    ),
  );
  const queueSelect = h(
    "select",
    { id: "filter-queue", name: "queue", onchange: (e) => go({ queue: e.target.value }) },
    h("option", { value: "" }, "all queues"),
    filters.queue ? h("option", { value: filters.queue, selected: true }, filters.queue) : null,
  );
  const kindInput = h("input", {
    id: "filter-kind",
    name: "kind",
    type: "search",
    placeholder: "any kind",
    value: filters.kind,
    list: "known-kinds",
    onchange: (e) => go({ kind: e.target.value.trim() }),
  });
  const kinds = h("datalist", { id: "known-kinds" });
  const sizeSelect = h(
    "select",
    { id: "filter-limit", name: "limit", onchange: (e) => go({ limit: Number(e.target.value) }) },
    [...new Set([...PAGE_SIZES, filters.limit])]
      .sort((a, b) => a - b)
      .map((n) => h("option", { value: n, selected: n === filters.limit }, `${n} a page`)),
  );
  const filtered = filters.status.length || filters.queue || filters.kind;

  const body = h("tbody");
  let pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const message = h("p", { class: "inline-error", role: "alert", hidden: true });

  root.append(
    h("h1", {}, "Jobs"),
    h(
      "form",
      { class: "filters", onsubmit: (e) => e.preventDefault() },
      h("fieldset", {}, h("legend", {}, "State"), stateBoxes),
      h("div", { class: "field" }, h("label", { for: "filter-queue" }, "Queue"), queueSelect),
      h("div", { class: "field" }, h("label", { for: "filter-kind" }, "Kind"), kindInput, kinds),
      h("div", { class: "field" }, h("label", { for: "filter-limit" }, "Page size"), sizeSelect),
      filtered ? h("a", { href: "#/jobs", class: "small" }, "clear filters") : null,
    ),
    message,
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "jobs" }, jobHead(), body)),
    pager,
  );

  const seenKinds = new Set(filters.kind ? [filters.kind] : []);

  function renderPager(nextCursor) {
    const newer = trail.length
      ? h("button", { type: "button", onclick: () => go({}, trail.pop()) }, "← Newer")
      : cursor
        ? h("a", { href: hashFor(filters, "") }, "← First page")
        : null;
    const older = nextCursor
      ? h(
          "button",
          {
            type: "button",
            onclick: () => {
              trail.push(cursor);
              go({}, nextCursor);
            },
          },
          "Older →",
        )
      : null;
    const fresh = h("nav", { class: "pager", "aria-label": "Pages", dataset: { sig: sig([trail.length, cursor, nextCursor]) } }, newer, older);
    pager = swap(pager, fresh);
  }

  async function refresh() {
    let page;
    let queues;
    try {
      [page, queues] = await Promise.all([
        get("jobs", { status: filters.status, queue: filters.queue, kind: filters.kind, limit: filters.limit, cursor, summary: true }),
        get("queues"),
      ]);
    } catch (error) {
      // A filter the API refuses (422) is the user's to fix, not a lost connection.
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 401) {
        message.textContent = problemText(error);
        message.hidden = false;
        reconcile(body, []);
        return;
      }
      throw error;
    }
    message.hidden = true;
    const names = queues.queues.map((q) => q.name);
    if (filters.queue && !names.includes(filters.queue)) names.push(filters.queue);
    const options = [h("option", { value: "", dataset: { key: "" } }, "all queues")].concat(
      names.map((n) => h("option", { value: n, selected: n === filters.queue, dataset: { key: n } }, n)),
    );
    reconcile(queueSelect, options);
    queueSelect.value = filters.queue;
    for (const job of page.jobs) seenKinds.add(job.kind);
    reconcile(kinds, [...seenKinds].sort().map((k) => h("option", { value: k, dataset: { key: k } })));
    reconcile(body, page.jobs.length ? page.jobs.map(jobRow) : [emptyRow(8, filtered ? "No job matches these filters." : "No jobs yet.")]);
    renderPager(page.next_cursor);
  }

  return { refresh };
}
