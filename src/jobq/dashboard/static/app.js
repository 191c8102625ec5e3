// The dashboard's shell: hash routes, live refresh, the token prompt.
//
//   #/                    overview: queues, totals, workers, latest jobs
//   #/jobs?status=…&queue=…&kind=…&cursor=…   the job list (status=scheduled:
//                         queued jobs due later, told apart in the page)
//   #/jobs/<id>           one job with its attempts
//   #/schedules           periodic jobs: next and last fire, pause / resume / run now
//   #/workflows           workflows and batches; #/workflows/<id> one drawn as a graph
//   #/limits              flow limits with their use; add, edit, delete
//
// The current view refreshes every REFRESH_MS while the tab is visible; one
// refresh at a time, and an action asks for one at once when it is done.

import { ApiError, forgetToken, onTokenNeeded, token } from "./api.js";
import { h, problemText, tick } from "./ui.js";
import { overviewView } from "./overview.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { schedulesView } from "./schedules.js";
import { workflowView, workflowsView } from "./workflows.js";
import { limitsView } from "./limits.js";

const REFRESH_MS = 2000;

const viewRoot = document.getElementById("view");
const live = document.getElementById("live");
const banner = document.getElementById("banner");
const forgetButton = document.getElementById("forget-token");

let current = null; // {refresh, hash, busy, again}

function route(hash) {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const job = path.match(/^\/jobs\/([^/]+)$/);
  if (job) return { name: "jobs", make: (root, ctx) => jobView(root, ctx, decodeURIComponent(job[1])) };
  if (path === "/jobs") return { name: "jobs", make: (root, ctx) => jobsView(root, ctx, params) };
  const workflow = path.match(/^\/workflows\/([^/]+)$/);
  if (workflow) return { name: "workflows", make: (root, ctx) => workflowView(root, ctx, decodeURIComponent(workflow[1])) };
  if (path === "/workflows") return { name: "workflows", make: (root, ctx) => workflowsView(root, ctx) };
  if (path === "/limits") return { name: "limits", make: (root, ctx) => limitsView(root, ctx) };
  if (path === "/schedules") return { name: "schedules", make: (root, ctx) => schedulesView(root, ctx) };
  if (path === "" || path === "/") return { name: "overview", make: (root, ctx) => overviewView(root, ctx) };
  return {
    name: "",
    make: (root) => {
      root.append(h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/" }, "Back to the overview")));
      return { refresh: async () => {} };
    },
  };
}

function show() {
  const target = route(location.hash);
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === target.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const root = h("div", { class: "view" });
  viewRoot.replaceChildren(root);
  const view = { hash: location.hash, busy: false, again: false };
  current = view;
  Object.assign(view, target.make(root, { refresh: () => refresh(view) }));
  refresh(view);
}

async function refresh(view = current) {
  if (!view || view !== current) return;
  if (view.busy) {
    view.again = true;
    return;
  }
  view.busy = true;
  try {
    await view.refresh();
    if (view === current) connected();
  } catch (error) {
    if (view === current) failed(error);
  } finally {
    view.busy = false;
    if (view.again && view === current) {
      view.again = false;
      refresh(view);
    }
  }
}

function connected() {
  banner.hidden = true;
  live.className = "live live-ok";
  live.textContent = `live · ${new Date().toLocaleTimeString()}`;
  forgetButton.hidden = !token();
}

function failed(error) {
  if (!(error instanceof ApiError)) console.error(error);
  const unreachable = error instanceof ApiError && error.status === 0;
  live.className = "live live-error";
  live.textContent = unreachable ? "offline" : "error";
  banner.textContent = unreachable
    ? `Cannot reach jobq: ${error.problem.detail}. Retrying every ${REFRESH_MS / 1000} s.`
    : error instanceof ApiError
      ? problemText(error)
      : `Unexpected error: ${error.message || error}`;
  banner.hidden = false;
}

// --- the token prompt ------------------------------------------------------

const tokenDialog = document.getElementById("token-dialog");
const tokenInput = document.getElementById("token-input");

onTokenNeeded(
  (message) =>
    new Promise((resolve) => {
      document.getElementById("token-message").textContent = message;
      tokenInput.value = "";
      live.className = "live live-error";
      live.textContent = "token needed";
      const closed = () => {
        const value = tokenInput.value.trim();
        if (!value) {
          tokenDialog.showModal();
          return;
        }
        tokenDialog.removeEventListener("close", closed);
        resolve(value);
      };
      tokenDialog.addEventListener("close", closed);
      tokenDialog.showModal();
      tokenInput.focus();
    }),
);

// Without a token nothing works: Escape does not dismiss the prompt.
tokenDialog.addEventListener("cancel", (event) => event.preventDefault());

forgetButton.addEventListener("click", () => {
  forgetToken();
  forgetButton.hidden = true;
  refresh();
});

// --- start -----------------------------------------------------------------------

window.addEventListener("hashchange", show);
document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    live.className = "live";
    live.textContent = "paused (tab hidden)";
  } else {
    refresh();
  }
});
setInterval(() => {
  if (!document.hidden) refresh();
}, REFRESH_MS);
setInterval(tick, 1000);
show();
