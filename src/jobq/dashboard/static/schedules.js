// Schedules: every periodic job with its timing, next and last fire times,
// paused or not, where it is defined (code or API), and pause / resume / run now.

import { get, post } from "./api.js";
import { confirmAction, emptyRow, h, notify, problemText, reconcile, sig, when } from "./ui.js";

const COLUMNS = 9;
const CODE_HELP = "Defined in the app's code (@app.periodic): every worker upserts it at start";

function timing(s) {
  if (s.cron) return h("span", {}, h("code", {}, s.cron), s.timezone === "UTC" ? "" : h("span", { class: "muted" }, ` ${s.timezone}`));
  return h("span", {}, "every ", h("code", {}, s.every));
}

export function schedulesView(root, ctx) {
  const body = h("tbody");
  const count = h("span", { class: "count" });
  root.append(
    h("h1", {}, "Schedules ", count),
    h(
      "p",
      { class: "hint" },
      "Periodic jobs. Every worker process fires the due ones; the database makes each fire time exactly one job.",
    ),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid", id: "schedules" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Schedule", "Kind", "When", "Queue", "Source", "State", "Next fire", "Last fire"].map((t) => h("th", { scope: "col" }, t)),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
          ),
        ),
        body,
      ),
    ),
  );

  async function act(s, verb) {
    if (verb !== "run") {
      const ok = await confirmAction({
        title: `${verb === "pause" ? "Pause" : "Resume"} schedule “${s.name}”?`,
        body:
          verb === "pause"
            ? "It stops firing until resumed (a pause outlives worker restarts, also for a schedule defined in code)."
            : "It fires again from its next fire time; the paused time is not made up.",
        confirm: verb === "pause" ? "Pause schedule" : "Resume schedule",
      });
      if (!ok) return;
    }
    try {
      const { data } = await post(`schedules/${encodeURIComponent(s.name)}/${verb}`);
      if (verb === "run") notify("ok", `Schedule “${s.name}” enqueued job ${data.id}.`);
      else notify("ok", `Schedule “${data.name}” ${data.paused ? "paused" : "resumed"}.`);
    } catch (error) {
      notify("error", `Could not ${verb === "run" ? "run" : verb} schedule “${s.name}”: ${problemText(error)}`);
    }
    ctx.refresh();
  }

  function row(s) {
    return h(
      "tr",
      { dataset: { key: s.name, schedule: s.name, sig: sig(s) } },
      h("th", { scope: "row" }, s.name),
      h("td", {}, h("a", { href: `#/jobs?kind=${encodeURIComponent(s.kind)}` }, s.kind)),
      h("td", { class: "when" }, timing(s)),
      h("td", {}, s.queue),
      h("td", { title: s.source === "code" ? CODE_HELP : "Created through the API or jobq schedules add" }, s.source),
      h("td", { class: "state" }, s.paused ? h("span", { class: "badge paused" }, "paused") : h("span", { class: "badge active" }, "active")),
      h("td", { class: "next" }, s.paused ? h("span", { class: "muted" }, "—") : when(s.next_fire_at)),
      // The last fire time links to the job it made.
      h("td", { class: "last" }, s.last_job_id ? h("a", { href: `#/jobs/${s.last_job_id}`, title: s.last_job_id }, when(s.last_fire_at)) : when(s.last_fire_at)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", class: s.paused ? "" : "warn", onclick: () => act(s, s.paused ? "resume" : "pause") }, s.paused ? "Resume" : "Pause"),
        " ",
        h("button", { type: "button", onclick: () => act(s, "run"), title: "Enqueue one job now; fire times do not move" }, "Run now"),
      ),
    );
  }

  async function refresh() {
    const { schedules } = await get("schedules");
    count.textContent = `(${schedules.length})`;
    reconcile(
      body,
      schedules.length
        ? schedules.map(row)
        : [emptyRow(COLUMNS, "No schedules yet. Add @app.periodic to a task, or run jobq schedules add.")],
    );
  }

  return { refresh };
}
