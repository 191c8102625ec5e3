// The dashboard's only way to the server: jobq's public JSON API under v1/.
//
// URLs are relative to the page, so a jobq served under a path prefix works.
// With API tokens configured, a 401 asks the user for a bearer token (through
// the handler app.js installs with onTokenNeeded), keeps it in sessionStorage
// (this tab only, gone when it closes) and repeats the request.

const TOKEN_KEY = "jobq.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

let askForToken = null;
let pendingAsk = null;

// handler(message) -> Promise<string>: resolves with the token the user gave.
export function onTokenNeeded(handler) {
  askForToken = handler;
}

// One prompt at a time, whichever request met the 401 first.
function ask(message) {
  if (!pendingAsk) {
    pendingAsk = askForToken(message).finally(() => {
      pendingAsk = null;
    });
  }
  return pendingAsk;
}

async function readProblem(response) {
  try {
    const body = await response.json();
    if (body && typeof body === "object") return body;
  } catch {
    // Not JSON (a proxy's HTML error page): fall through.
  }
  return { title: response.statusText || "Error", status: response.status };
}

function url(path, query) {
  const target = new URL(`v1/${path}`, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (v !== undefined && v !== null && v !== "") target.searchParams.append(name, v);
    }
  }
  return target;
}

// -> {status, data}; throws ApiError (status 0 when the server is unreachable).
export async function request(method, path, { query, body } = {}) {
  for (;;) {
    const sent = token();
    const headers = { Accept: "application/json" };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, { title: "jobq is unreachable", detail: String(error.message || error) });
    }
    if (response.status === 401 && askForToken) {
      if (sent && token() === sent) forgetToken();
      // Someone may have entered a token while this request was in flight.
      if (token() && token() !== sent) continue;
      const message = sent
        ? "That token was not accepted. Enter a valid bearer token."
        : "This jobq API needs a bearer token.";
      setToken(await ask(message));
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await readProblem(response));
    const data = response.status === 204 ? null : await response.json();
    return { status: response.status, data };
  }
}

export async function get(path, query) {
  return (await request("GET", path, { query })).data;
}

export function post(path, body) {
  return request("POST", path, { body });
}

export function put(path, body) {
  return request("PUT", path, { body });
}

export function del(path) {
  return request("DELETE", path);
}
