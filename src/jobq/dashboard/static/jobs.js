// The job list: filters (state, queue, kind) in the URL, pages by next_cursor;
// bulk actions: cancel the selected jobs, retry every failed job of a queue.

import { ApiError, get, post } from "./api.js";
import {
  STATES,
  STATE_LABELS,
  absolute,
  badge,
  confirmAction,
  duration,
  emptyRow,
  h,
  isScheduled,
  jobLink,
  notify,
  problemText,
  progressBar,
  reconcile,
  shownStatus,
  sig,
  swap,
  took,
  when,
} from "./ui.js";

const PAGE_SIZES = [25, 50, 100, 200];
// The state chips: the API's states, with "scheduled" (queued, due later) beside queued.
const CHIPS = STATES.flatMap((s) => (s === "queued" ? ["queued", "scheduled"] : [s]));
const CANCELLABLE = ["pending", "queued", "retrying", "running"];
const COLUMNS = ["Job", "Kind", "Queue", "State", "Attempts", "Priority", "Runs at / took", "Last error"];

// selectAll: the header's checkbox, when the table has a selection column.
export function jobHead(selectAll = null) {
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      selectAll ? h("th", { scope: "col", class: "select" }, selectAll) : null,
      COLUMNS.map((t) => h("th", { scope: "col", class: t === "Attempts" || t === "Priority" ? "num" : null }, t)),
    ),
  );
}

// A finished job shows how long it ran; any other when it runs (or ran) next.
function timing(job) {
  const seconds = took(job);
  if (seconds === null) return when(job.run_at);
  return h("span", { class: "took", title: `finished ${absolute(job.finished_at)}` }, `took ${duration(seconds)}`);
}

// select: {selected: Set of ids, onchange(id, checked)} adds a checkbox column.
export function jobRow(job, select = null) {
  const status = shownStatus(job);
  const cancellable = CANCELLABLE.includes(job.status) && !job.cancel_requested;
  return h(
    "tr",
    { dataset: { key: job.id, jobId: job.id, sig: sig([job, status, select ? select.selected.has(job.id) : null]) } },
    select
      ? h(
          "td",
          { class: "select" },
          h("input", {
            type: "checkbox",
            "aria-label": `Select job ${job.id}`,
            checked: cancellable && select.selected.has(job.id),
            disabled: !cancellable,
            onchange: (e) => select.onchange(job.id, e.target.checked),
          }),
        )
      : null,
    h("td", {}, jobLink(job.id)),
    h("td", {}, job.kind),
    h("td", {}, job.queue),
    h(
      "td",
      {},
      badge(status),
      job.cancel_requested && job.status === "running" ? h("span", { class: "small muted" }, " cancelling") : null,
      // Only a running job's bar: a finished one keeps its last progress, which the job page shows.
      job.status === "running" ? progressBar(job) : null,
    ),
    h("td", { class: "num" }, `${job.attempts}/${job.max_attempts}`),
    h("td", { class: "num" }, job.priority),
    h("td", {}, timing(job)),
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
    status: params.getAll("status").filter((s) => CHIPS.includes(s)),
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

  const stateBoxes = CHIPS.map((s) =>
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

  // The API knows no "scheduled": ask for queued jobs and tell them apart here.
  // (So a page of "scheduled" can hold fewer than `limit` rows; Older → goes on.)
  const apiStatus = [...new Set(filters.status.map((s) => (s === "scheduled" ? "queued" : s)))];
  const wanted = (job) => {
    if (job.status !== "queued" || !filters.status.length) return true;
    return filters.status.includes(isScheduled(job) ? "scheduled" : "queued");
  };

  // The selection survives refreshes; a job that can no longer be cancelled leaves it.
  const selected = new Set();
  const cancelButton = h("button", { type: "button", class: "danger", id: "cancel-selected", disabled: true, onclick: () => cancelSelected() }, "Cancel selected");
  const selectAll = h("input", {
    type: "checkbox",
    id: "select-all",
    "aria-label": "Select every job on this page that can be cancelled",
    onchange: (e) => {
      for (const box of body.querySelectorAll("td.select input:not(:disabled)")) {
        box.checked = e.target.checked;
        select.onchange(box.closest("tr").dataset.jobId, e.target.checked);
      }
    },
  });
  const select = {
    selected,
    onchange: (id, checked) => {
      if (checked) selected.add(id);
      else selected.delete(id);
      showSelection();
    },
  };
  function showSelection() {
    cancelButton.disabled = selected.size === 0;
    cancelButton.textContent = selected.size ? `Cancel selected (${selected.size})` : "Cancel selected";
    const boxes = body.querySelectorAll("td.select input:not(:disabled)");
    selectAll.checked = boxes.length > 0 && [...boxes].every((b) => b.checked);
  }

  async function cancelSelected() {
    const ids = [...selected];
    const ok = await confirmAction({
      title: `Cancel ${ids.length} selected job${ids.length === 1 ? "" : "s"}?`,
      body: "Queued and retrying jobs will not run; running ones are asked to stop (a handler that finishes first still succeeds). You can retry them later.",
      confirm: "Cancel jobs",
    });
    if (!ok) return;
    // One cancel per job: the bulk call takes a filter, not a list of ids.
    const results = await Promise.allSettled(ids.map((id) => post(`jobs/${encodeURIComponent(id)}/cancel`)));
    const failed = results.filter((r) => r.status === "rejected");
    selected.clear();
    showSelection();
    if (failed.length) notify("error", `Cancelled ${ids.length - failed.length} of ${ids.length} jobs; ${problemText(failed[0].reason)}`);
    else notify("ok", `Cancelled ${ids.length} job${ids.length === 1 ? "" : "s"}.`);
    ctx.refresh();
  }

  async function retryFailed() {
    const ok = await confirmAction({
      title: `Retry every failed job in “${filters.queue}”?`,
      body: "Every failed job of this queue goes back to it with its attempts reset to 0; their history is kept.",
      confirm: "Retry failed jobs",
    });
    if (!ok) return;
    try {
      const { data } = await post("jobs/bulk/retry", { queue: filters.queue, status: ["failed_permanent"] });
      notify("ok", `${data.count} failed job${data.count === 1 ? "" : "s"} of “${filters.queue}” queued again.`);
    } catch (error) {
      notify("error", `Could not retry the failed jobs of “${filters.queue}”: ${problemText(error)}`);
    }
    ctx.refresh();
  }

  const bulk = h(
    "div",
    { class: "bulk" },
    cancelButton,
    filters.queue
      ? h("button", { type: "button", class: "warn", id: "retry-failed", onclick: retryFailed }, `Retry all failed in “${filters.queue}”`)
      : h("span", { class: "small muted" }, "Choose a queue to retry all its failed jobs."),
  );

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
    bulk,
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "jobs" }, jobHead(selectAll), body)),
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
        get("jobs", { status: apiStatus, queue: filters.queue, kind: filters.kind, limit: filters.limit, cursor, summary: true }),
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
    const pageJobs = page.jobs.filter(wanted);
    for (const id of [...selected]) {
      const job = pageJobs.find((j) => j.id === id);
      if (!job || !CANCELLABLE.includes(job.status) || job.cancel_requested) selected.delete(id);
    }
    reconcile(
      body,
      pageJobs.length ? pageJobs.map((job) => jobRow(job, select)) : [emptyRow(9, filtered ? "No job matches these filters." : "No jobs yet.")],
    );
    showSelection();
    renderPager(page.next_cursor);
  }

  return { refresh };
}
