// DOM helpers, formatting, the confirmation dialog and notices.
// Everything that comes from the API is put in the page as text, never as HTML.

export const STATES = ["pending", "queued", "running", "retrying", "succeeded", "failed_permanent", "cancelled"];
export const STATE_LABELS = {
  pending: "pending",
  queued: "queued",
  running: "running",
  retrying: "retrying",
  succeeded: "succeeded",
  failed_permanent: "failed",
  cancelled: "cancelled",
  scheduled: "scheduled",
};
// Terminal states: a job in one has a duration, can be retried or deleted.
export const FINISHED = ["succeeded", "failed_permanent", "cancelled"];

// "scheduled" is not a state of the API: a queued job whose run_at is still
// ahead (Sidekiq's and Oban's Scheduled tab). The dashboard shows it apart.
export function isScheduled(job, now = Date.now()) {
  return job.status === "queued" && Date.parse(job.run_at) > now;
}

export function shownStatus(job) {
  return isScheduled(job) ? "scheduled" : job.status;
}

// How long a finished job ran (its last attempt: started_at is reset by each claim).
export function took(job) {
  if (!FINISHED.includes(job.status) || !job.started_at || !job.finished_at) return null;
  return (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
}

// h("a", {href: "#/", class: "x", onclick: fn, dataset: {k: "v"}}, "text", child, [more])
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// Whether `a` and `b` show the same thing: their data-sig (the JSON they were
// rendered from) when both have one, else their HTML.
function same(a, b) {
  if (a.dataset.sig !== undefined && b.dataset.sig !== undefined) return a.dataset.sig === b.dataset.sig;
  return a.outerHTML === b.outerHTML;
}

// Put `fresh` in `slot`'s place unless it shows the same: a refresh every two
// seconds must not reset focus, a text selection or a half-done click.
export function swap(slot, fresh) {
  if (same(slot, fresh)) return slot;
  slot.replaceWith(fresh);
  return fresh;
}

// Keep `parent`'s children in the order of `fresh` (elements with data-key),
// reusing an existing child whenever it shows the same.
export function reconcile(parent, fresh) {
  const old = new Map();
  for (const child of parent.children) old.set(child.dataset.key, child);
  const result = fresh.map((el, i) => {
    const existing = old.get(el.dataset.key);
    old.delete(el.dataset.key);
    let node = el;
    if (existing && same(existing, el)) node = existing;
    else if (existing) existing.remove();
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
    return node;
  });
  for (const leftover of old.values()) leftover.remove();
  return result;
}

export function sig(value) {
  return JSON.stringify(value);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const parts = [
    [Math.floor(s / 86400), "d"],
    [Math.floor((s % 86400) / 3600), "h"],
    [Math.floor((s % 3600) / 60), "m"],
    [Math.floor(s % 60), "s"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  return parts
    .slice(first, first + 2)
    .map(([n, unit]) => `${n}${unit}`)
    .join(" ");
}

function relative(iso, now) {
  const delta = (now - Date.parse(iso)) / 1000;
  if (Math.abs(delta) < 1) return "just now";
  return delta > 0 ? `${duration(delta)} ago` : `in ${duration(-delta)}`;
}

// The hover text of a relative time: the local time, then the API's ISO 8601.
export function absolute(iso) {
  const local = new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  return `${local} (${iso})`;
}

// An API timestamp as "12 s ago" / "in 3m 5s", exact time on hover; tick()
// keeps the text current without re-rendering anything around it.
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: absolute(iso), "data-relative": true }, relative(iso, Date.now()));
}

export function tick(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("time[data-relative]")) {
    const text = relative(el.dateTime, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

// A fraction 0..1 as a whole percentage, never rounded up to a false 100%.
export function percent(fraction) {
  return `${fraction >= 1 ? 100 : Math.floor(fraction * 100)}%`;
}

// The progress a job's handler reported, as a bar and its percentage; null when
// it reported none. `details` (an object) goes in the hover text.
export function progressBar(job, details = null) {
  if (job.progress === null || job.progress === undefined) return null;
  const text = percent(job.progress);
  const hover = details && Object.keys(details).length ? `${text} — ${JSON.stringify(details)}` : text;
  return h(
    "span",
    { class: "progress", title: hover },
    h("progress", { max: 1, value: job.progress, "aria-label": `Progress ${text}` }),
    h("span", { class: "progress-text" }, text),
  );
}

export function badge(status) {
  return h("span", { class: `badge state-${status}` }, STATE_LABELS[status] || status);
}

export function shortId(id) {
  // UUIDv7: the first 13 characters are the time; the tail tells jobs apart.
  return `${id.slice(0, 8)}…${id.slice(-6)}`;
}

export function jobLink(id) {
  return h("a", { href: `#/jobs/${id}`, class: "mono", title: id }, shortId(id));
}

export function pretty(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function emptyRow(columns, text) {
  return h("tr", { dataset: { key: "empty" } }, h("td", { colspan: columns, class: "empty" }, text));
}

// --- confirmation --------------------------------------------------------------

export function confirmAction({ title, body, confirm }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").textContent = body;
  document.getElementById("confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });
}

// --- notices: the result of an action, kept until dismissed or replaced ------

export function notify(kind, message) {
  const box = document.getElementById("notices");
  const close = h("button", { type: "button", class: "link-button", "aria-label": "Dismiss" }, "×");
  const notice = h("div", { class: `notice notice-${kind}` }, h("span", {}, message), close);
  close.addEventListener("click", () => notice.remove());
  // Show the latest few; older results scroll away.
  box.prepend(notice);
  while (box.children.length > 3) box.lastElementChild.remove();
  return notice;
}

export function problemText(error) {
  const p = error.problem || {};
  const title = p.title && p.detail && p.title !== p.detail ? `${p.title}: ` : "";
  const status = error.status ? ` (HTTP ${error.status})` : "";
  return `${title}${p.detail || p.title || error.message}${status}`;
}
