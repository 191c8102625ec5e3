// Flow limits: every limit with what it covers (a queue or all, a key pattern),
// its bounds and its use now (running jobs, starts in the rate window, runnable
// jobs it covers and those it holds back), a form that creates or replaces one
// (PUT /v1/limits/{name}) and delete after a confirmation.
//
// The form leaves validation to the API (novalidate): its problem+json is the one
// set of rules, shown beside the form, each bad field marked.

import { del, get, put } from "./api.js";
import { confirmAction, emptyRow, h, notify, problemText, reconcile, sig } from "./ui.js";

const COLUMNS = 8;
const FIELDS = [
  // [name, label, input attributes, hint]
  ["name", "Name", { type: "text", placeholder: "tenants", autocomplete: "off" }, "a-z, 0-9, _ . -"],
  ["queue", "Queue", { type: "text", placeholder: "all queues", autocomplete: "off" }, "empty: every queue"],
  ["key_pattern", "Key pattern", { type: "text", placeholder: "tenant:%", autocomplete: "off" }, "LIKE on the job's key; empty: whole queue"],
  ["max_running", "Max running", { type: "number", inputmode: "numeric", placeholder: "—" }, "jobs at once (a key)"],
  ["rate", "Rate", { type: "number", inputmode: "numeric", placeholder: "—" }, "starts per period"],
  ["period_seconds", "Period (s)", { type: "number", inputmode: "decimal", step: "any", placeholder: "—" }, "the rate's window"],
];
const NUMBERS = ["max_running", "rate", "period_seconds"];

// The request body from the form: empty fields are null (no bound, every queue);
// numbers are sent as numbers, anything else as typed, for the API to judge.
export function limitBody(values) {
  const body = {};
  for (const [name] of FIELDS.slice(1)) {
    const raw = (values[name] || "").trim();
    if (!raw) body[name] = null;
    else if (NUMBERS.includes(name) && Number.isFinite(Number(raw))) body[name] = Number(raw);
    else body[name] = raw;
  }
  return body;
}

function scope(l) {
  return h(
    "td",
    { class: "scope" },
    l.queue ? h("a", { href: `#/jobs?queue=${encodeURIComponent(l.queue)}` }, l.queue) : h("span", { class: "muted" }, "all queues"),
  );
}

function meter(value, max, title) {
  return h("meter", { min: 0, max, value: Math.min(value, max), high: max - 0.5, optimum: 0, title });
}

// Running now against max_running: the busiest key for a per-key limit (the one
// that meets the bound first), with the total over its keys below.
function concurrency(l) {
  if (l.max_running === null) return h("td", { class: "num concurrency" }, h("span", { class: "muted" }, "—"), h("div", { class: "small muted" }, `${l.running} running`));
  if (l.key_pattern) {
    return h(
      "td",
      { class: "num concurrency" },
      meter(l.busiest_key_running, l.max_running, "The busiest key's running jobs"),
      ` ${l.busiest_key_running}/${l.max_running} a key`,
      h("div", { class: "small muted" }, `${l.running} running in all`),
    );
  }
  return h("td", { class: "num concurrency" }, meter(l.running, l.max_running, "Running jobs"), ` ${l.running}/${l.max_running}`);
}

function rate(l) {
  if (l.rate === null) return h("td", { class: "num rate" }, h("span", { class: "muted" }, "—"));
  return h(
    "td",
    { class: "num rate" },
    meter(l.recent_starts, l.rate, "Starts in the current window"),
    ` ${l.recent_starts}/${l.rate}`,
    h("div", { class: "small muted" }, `per ${l.period_seconds} s${l.key_pattern ? " a key" : ""}`),
  );
}

function held(l) {
  const parts = [];
  if (l.max_running !== null) parts.push(`${l.held_by_concurrency} by concurrency`);
  if (l.rate !== null) parts.push(`${l.held_by_rate} by rate`);
  const most = Math.max(l.held_by_concurrency, l.held_by_rate);
  return h("td", { class: `num held${most ? " alert" : ""}`, title: "Runnable jobs this limit keeps waiting now" }, String(most), h("div", { class: "small muted" }, parts.join(", ")));
}

export function limitsView(root, ctx) {
  const body = h("tbody");
  const count = h("span", { class: "count" });
  const inputs = {};
  const errors = h("div", { class: "inline-error form-errors", id: "limit-errors", role: "alert", hidden: true });
  const formTitle = h("h2", { id: "limit-form-title" }, "Add a limit");
  const form = h(
    "form",
    { class: "filters limit-form", id: "limit-form", novalidate: true, "aria-labelledby": "limit-form-title", onsubmit: (e) => save(e) },
    FIELDS.map(([name, label, attrs, hint]) => {
      inputs[name] = h("input", { id: `limit-${name}`, name, ...attrs, "aria-describedby": `limit-${name}-hint` });
      return h(
        "div",
        { class: "field" },
        h("label", { for: `limit-${name}` }, label),
        inputs[name],
        h("span", { class: "small muted", id: `limit-${name}-hint` }, hint),
      );
    }),
    h(
      "div",
      { class: "field form-buttons" },
      h("button", { type: "submit", class: "primary", id: "limit-save" }, "Save limit"),
      h("button", { type: "button", onclick: () => clear() }, "Clear"),
    ),
  );

  root.append(
    h("h1", {}, "Limits ", count),
    h(
      "p",
      { class: "hint" },
      "Flow limits: at most N jobs running at once and/or N starts per period, for a queue or every queue, " +
        "per concurrency key when a key pattern is given. Jobs over a limit stay queued without spending an attempt.",
    ),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid", id: "limits" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Limit", "Queue", "Key pattern", "Running", "Starts (rate)", "Waiting", "Held back"].map((t) => h("th", { scope: "col" }, t)),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
          ),
        ),
        body,
      ),
    ),
    formTitle,
    form,
    errors,
  );

  function showErrors(error) {
    for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
    if (!error) {
      errors.hidden = true;
      errors.replaceChildren();
      return;
    }
    const fieldErrors = (error.problem && error.problem.errors) || [];
    const items = [];
    for (const e of fieldErrors) {
      const name = [...(e.loc || [])].reverse().find((part) => part in inputs);
      if (name) inputs[name].setAttribute("aria-invalid", "true");
      items.push(h("li", {}, name ? `${name}: ${e.msg}` : e.msg));
    }
    errors.replaceChildren(h("p", {}, `Not saved: ${problemText(error)}`), items.length ? h("ul", {}, items) : null);
    errors.hidden = false;
  }

  function clear() {
    for (const input of Object.values(inputs)) input.value = "";
    formTitle.textContent = "Add a limit";
    showErrors(null);
  }

  function edit(l) {
    for (const [name] of FIELDS) inputs[name].value = l[name] === null || l[name] === undefined ? "" : String(l[name]);
    formTitle.textContent = `Edit limit “${l.name}”`;
    showErrors(null);
    inputs.max_running.focus();
  }

  async function save(event) {
    event.preventDefault();
    const name = inputs.name.value.trim();
    for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
    if (!name) {
      inputs.name.setAttribute("aria-invalid", "true");
      errors.replaceChildren(h("p", {}, "Not saved: give the limit a name."));
      errors.hidden = false;
      inputs.name.focus();
      return;
    }
    // A number field holding something that is no number reads as "": say so
    // rather than send null, which would drop that bound.
    const unreadable = NUMBERS.filter((n) => inputs[n].validity.badInput);
    if (unreadable.length) {
      for (const n of unreadable) inputs[n].setAttribute("aria-invalid", "true");
      errors.replaceChildren(h("p", {}, `Not saved: not a number: ${unreadable.join(", ")}.`));
      errors.hidden = false;
      inputs[unreadable[0]].focus();
      return;
    }
    const values = Object.fromEntries(FIELDS.map(([n]) => [n, inputs[n].value]));
    try {
      const { data } = await put(`limits/${encodeURIComponent(name)}`, limitBody(values));
      showErrors(null);
      notify("ok", `Limit “${data.name}” saved; workers apply it within 2 s.`);
      clear();
    } catch (error) {
      showErrors(error);
    }
    ctx.refresh();
  }

  async function remove(l) {
    const ok = await confirmAction({
      title: `Delete limit “${l.name}”?`,
      body: "Its jobs are claimed without it from the workers' next check (within 2 s).",
      confirm: "Delete limit",
    });
    if (!ok) return;
    try {
      await del(`limits/${encodeURIComponent(l.name)}`);
      notify("ok", `Limit “${l.name}” deleted.`);
    } catch (error) {
      notify("error", `Could not delete limit “${l.name}”: ${problemText(error)}`);
    }
    ctx.refresh();
  }

  function row(l) {
    return h(
      "tr",
      { dataset: { key: l.name, limit: l.name, sig: sig(l) } },
      h("th", { scope: "row" }, l.name),
      scope(l),
      h("td", {}, l.key_pattern ? h("code", {}, l.key_pattern) : h("span", { class: "muted" }, "whole queue")),
      concurrency(l),
      rate(l),
      h("td", { class: "num waiting", title: "Runnable jobs it covers, claimed soon or held back" }, String(l.waiting)),
      held(l),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", onclick: () => edit(l) }, "Edit"),
        " ",
        h("button", { type: "button", class: "danger", onclick: () => remove(l) }, "Delete"),
      ),
    );
  }

  async function refresh() {
    const { limits } = await get("limits");
    count.textContent = `(${limits.length})`;
    reconcile(
      body,
      limits.length ? limits.map(row) : [emptyRow(COLUMNS, "No flow limits. Add one below, with jobq limits set, or PUT /v1/limits/{name}.")],
    );
  }

  return { refresh };
}
