// One job: its fields, result, payload and metadata, the attempts timeline (outcome,
// worker, duration, error, traceback), and cancel / retry / delete with confirmation.

import { ApiError, del, get, post } from "./api.js";
import {
  FINISHED,
  absolute,
  badge,
  confirmAction,
  duration,
  h,
  notify,
  pretty,
  problemText,
  progressBar,
  shortId,
  shownStatus,
  sig,
  swap,
  took,
  when,
} from "./ui.js";

const CANCELLABLE = ["pending", "queued", "retrying", "running"];
const RETRYABLE = ["failed_permanent", "cancelled"];
const OUTCOME_LABELS = {
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  lease_expired: "lease expired",
  interrupted: "interrupted",
  snoozed: "snoozed",
};

// A result can be up to JOBQ_MAX_RESULT_BYTES (1 MiB by default): the page shows
// its start, pretty-printed, and says where the whole of it is.
export const RESULT_SHOWN_CHARS = 10000;

export function resultView(job) {
  const text = JSON.stringify(job.result, null, 2);
  if (text.length <= RESULT_SHOWN_CHARS) return h("pre", { class: "json", id: "job-result" }, text);
  return h(
    "div",
    {},
    h("pre", { class: "json", id: "job-result" }, text.slice(0, RESULT_SHOWN_CHARS), "\n…"),
    h(
      "p",
      { class: "small muted", id: "job-result-note" },
      `Showing the first ${RESULT_SHOWN_CHARS.toLocaleString("en")} of ${text.length.toLocaleString("en")} characters; the whole result is in `,
      h("a", { href: `v1/jobs/${encodeURIComponent(job.id)}` }, "the job's JSON"),
      ".",
    ),
  );
}

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function seconds(from, to) {
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

// Where a retry by hand reset `attempts`, read from the history alone: the
// job's last `attempts` counted attempts (an interrupted or snoozed one is not counted)
// are the current round; each earlier round ended with a cancelled attempt or
// after max_attempts counted ones (a job cancelled while it waited leaves no
// attempt, so that boundary is a best guess). -> indexes of the attempts that
// open a round after a retry by hand; attempts.length when the current round
// has no attempt yet.
export function retryMarks(attempts, job) {
  const counted = (a) => a.outcome !== "interrupted" && a.outcome !== "snoozed";
  let i = attempts.length;
  for (let n = 0; i > 0 && n < job.attempts; i--) if (counted(attempts[i - 1])) n++;
  while (i > 0 && !counted(attempts[i - 1])) i--;
  const marks = [];
  while (i > 0) {
    marks.unshift(i);
    for (let n = 0; i > 0 && n < job.max_attempts; i--) {
      // A cancelled attempt before this round's last one ended the round before.
      if (n > 0 && attempts[i - 1].outcome === "cancelled") break;
      if (counted(attempts[i - 1])) n++;
    }
  }
  return marks;
}

export function jobView(root, ctx, id) {
  let head = h("div");
  let fields = h("div");
  let attemptsBox = h("div");

  root.append(h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", h("span", { class: "mono" }, id)), head, fields, attemptsBox);

  async function remove(job) {
    const ok = await confirmAction({
      title: `Delete job ${shortId(job.id)}?`,
      body: "The job and its attempt history are removed for good.",
      confirm: "Delete job",
    });
    if (!ok) return;
    try {
      await del(`jobs/${encodeURIComponent(job.id)}`);
      notify("ok", `Job ${shortId(job.id)} deleted.`);
      location.hash = "#/jobs";
    } catch (error) {
      notify("error", `Could not delete job ${shortId(job.id)}: ${problemText(error)}`);
      ctx.refresh();
    }
  }

  async function act(job, action) {
    const running = job.status === "running";
    const ok = await confirmAction(
      action === "cancel"
        ? {
            title: `Cancel job ${shortId(job.id)}?`,
            body: running
              ? "The job is running: its worker is asked to stop it. A handler that finishes first still succeeds."
              : "The job will not run. You can retry it later.",
            confirm: "Cancel job",
          }
        : {
            title: `Retry job ${shortId(job.id)}?`,
            body: "The job goes back to its queue with its attempts reset to 0; its history is kept.",
            confirm: "Retry job",
          },
    );
    if (!ok) return;
    try {
      const { status, data } = await post(`jobs/${encodeURIComponent(job.id)}/${action}`);
      if (action === "retry") notify("ok", `Job ${shortId(data.id)} is queued again.`);
      else if (status === 202) notify("ok", `Cancel requested: job ${shortId(data.id)} is running and its worker has been asked to stop.`);
      else notify("ok", `Job ${shortId(data.id)} cancelled.`);
    } catch (error) {
      notify("error", `Could not ${action} job ${shortId(job.id)}: ${problemText(error)}`);
    }
    ctx.refresh();
  }

  function renderHead(job) {
    const canCancel = CANCELLABLE.includes(job.status) && !(job.status === "running" && job.cancel_requested);
    const canRetry = RETRYABLE.includes(job.status);
    const status = shownStatus(job);
    return h(
      "div",
      { class: "job-head", dataset: { sig: sig([job.kind, status, job.cancel_requested]) } },
      h("h1", {}, job.kind, " ", badge(status), job.cancel_requested && job.status === "running" ? h("span", { class: "badge paused" }, "cancel requested") : null),
      h(
        "div",
        { class: "actions" },
        canCancel ? h("button", { type: "button", class: "danger", onclick: () => act(job, "cancel") }, "Cancel job") : null,
        canRetry ? h("button", { type: "button", class: "primary", onclick: () => act(job, "retry") }, "Retry job") : null,
        FINISHED.includes(job.status) ? h("button", { type: "button", class: "danger", onclick: () => remove(job) }, "Delete job") : null,
      ),
    );
  }

  function renderFields(job, workflow) {
    const status = shownStatus(job);
    const ran = took(job);
    return h(
      "div",
      { class: "job-body", dataset: { sig: sig([job, status, workflow && workflow.id]) } },
      h(
        "section",
        { "aria-labelledby": "fields-title" },
        h("h2", { id: "fields-title" }, "Fields"),
        h(
          "dl",
          { class: "fields", id: "job-fields" },
          field("ID", h("span", { class: "mono" }, job.id)),
          field("State", badge(status)),
          field("Queue", h("a", { href: `#/jobs?queue=${encodeURIComponent(job.queue)}` }, job.queue)),
          field("Kind", h("a", { href: `#/jobs?kind=${encodeURIComponent(job.kind)}` }, job.kind)),
          workflow
            ? field("Workflow", h("a", { href: `#/workflows/${workflow.id}`, id: "job-workflow" }, workflow.name || shortId(workflow.id)))
            : null,
          field("Priority", job.priority),
          field("Attempts", `${job.attempts} of ${job.max_attempts}`),
          job.progress !== null && job.progress !== undefined
            ? field("Progress", h("span", { id: "job-progress" }, progressBar(job, job.progress_details), " ", when(job.progress_at)))
            : null,
          ran === null
            ? field("Runs at", when(job.run_at))
            : field("Duration", h("span", { class: "took", title: `${absolute(job.started_at)} → ${absolute(job.finished_at)}` }, duration(ran))),
          field("Created", when(job.created_at)),
          field("Updated", when(job.updated_at)),
          field("Started", when(job.started_at)),
          field("Finished", when(job.finished_at)),
          field("Worker", job.locked_by ? h("span", { class: "mono" }, job.locked_by) : h("span", { class: "muted" }, "—")),
          field("Idempotency key", job.idempotency_key ? h("span", { class: "mono" }, job.idempotency_key) : h("span", { class: "muted" }, "—")),
          field("Cancel requested", job.cancel_requested ? "yes" : "no"),
        ),
      ),
      job.last_error
        ? h(
            "section",
            { "aria-labelledby": "error-title" },
            h("h2", { id: "error-title" }, "Last error ", job.status === "succeeded" ? h("span", { class: "small muted" }, "from an earlier attempt; a later one succeeded") : null),
            h("pre", { class: "error" }, job.last_error),
          )
        : null,
      job.status === "succeeded" || job.result !== null
        ? h("section", { "aria-labelledby": "result-title" }, h("h2", { id: "result-title" }, "Result"), resultView(job))
        : null,
      job.progress_details && Object.keys(job.progress_details).length
        ? h("section", { "aria-labelledby": "progress-title" }, h("h2", { id: "progress-title" }, "Progress details"), pretty(job.progress_details))
        : null,
      h("section", { "aria-labelledby": "payload-title" }, h("h2", { id: "payload-title" }, "Payload"), pretty(job.payload)),
      Object.keys(job.metadata || {}).length
        ? h("section", { "aria-labelledby": "metadata-title" }, h("h2", { id: "metadata-title" }, "Metadata"), pretty(job.metadata))
        : null,
    );
  }

  function renderAttempts(attempts, job) {
    const items = attempts.map((a) => {
      const outcome = a.outcome || "running";
      const took = a.finished_at ? `took ${duration(seconds(a.started_at, a.finished_at))}` : "still running";
      return h(
        "li",
        { class: `attempt outcome-${outcome}`, dataset: { seq: a.seq } },
        h(
          "div",
          { class: "attempt-line" },
          h("strong", {}, `#${a.seq}`),
          h("span", { class: `badge outcome-${outcome}` }, OUTCOME_LABELS[outcome] || outcome),
          h("span", {}, "on ", a.worker_id ? h("span", { class: "mono" }, a.worker_id) : h("span", { class: "muted" }, "unknown worker")),
          h("span", { class: "muted" }, "started ", when(a.started_at), ", ", took),
        ),
        a.error ? h("pre", { class: "error" }, a.error) : null,
        a.traceback ? h("details", { class: "traceback" }, h("summary", {}, "Traceback"), h("pre", {}, a.traceback)) : null,
      );
    });
    for (const at of retryMarks(attempts, job)) {
      const marker = h("div", { class: "retry-mark", role: "separator" }, "retried by hand: attempts reset to 0");
      if (at < items.length) items[at].prepend(marker);
      else items[items.length - 1].append(marker);
    }
    return h(
      "section",
      { "aria-labelledby": "attempts-title", dataset: { sig: sig([attempts, job.attempts]) } },
      h("h2", { id: "attempts-title" }, `Attempts (${attempts.length})`),
      items.length ? h("ol", { class: "timeline", id: "attempts" }, items) : h("p", { class: "muted", id: "attempts" }, "No attempt yet."),
    );
  }

  async function refresh() {
    let job;
    let attempts;
    let workflows;
    try {
      [job, attempts, workflows] = await Promise.all([
        get(`jobs/${encodeURIComponent(id)}`),
        get(`jobs/${encodeURIComponent(id)}/attempts`),
        get("workflows", { job_id: id }),
      ]);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 422)) {
        const text = error.status === 404 ? "No job has this id. Finished jobs are deleted after the retention period." : problemText(error);
        head = swap(head, h("div", { dataset: { sig: sig(["missing", error.status]) } }, h("h1", {}, "Job not found"), h("p", { class: "inline-error" }, text)));
        fields = swap(fields, h("div", { dataset: { sig: "" } }));
        attemptsBox = swap(attemptsBox, h("div", { dataset: { sig: "" } }));
        return;
      }
      throw error;
    }
    head = swap(head, renderHead(job));
    fields = swap(fields, renderFields(job, workflows.workflows[0] || null));
    attemptsBox = swap(attemptsBox, renderAttempts(attempts.attempts, job));
  }

  return { refresh };
}
