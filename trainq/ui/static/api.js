// The JSON API, called with the session cookie; unsafe methods carry the session's
// CSRF token (the page's <meta name="trainq-csrf">, or GET /ui/session).

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

let csrfCache = null;

/** The session's CSRF token. */
export async function csrfToken() {
  if (csrfCache) return csrfCache;
  const meta = document.querySelector('meta[name="trainq-csrf"]');
  if (meta && meta.content) {
    csrfCache = meta.content;
  } else {
    const session = await getJSON("/ui/session");
    csrfCache = session.csrf;
  }
  return csrfCache;
}

/** A path with its query parameters (those null, undefined or "" left out). */
export function withQuery(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** GET ``path`` as JSON. */
export async function getJSON(path, params = {}) {
  const response = await fetch(withQuery(path, params), {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  return answer(response);
}

/** GET ``path`` as text (JSON lines: the console). */
export async function getText(path, params = {}) {
  const response = await fetch(withQuery(path, params), { credentials: "same-origin" });
  if (!response.ok) await answer(response);
  return response.text();
}

/** POST, PATCH or DELETE with the CSRF token; the answer's JSON. */
export async function send(method, path, body) {
  const headers = { Accept: "application/json", "X-CSRF-Token": await csrfToken() };
  const init = { method, credentials: "same-origin", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return answer(await fetch(path, init));
}

async function answer(response) {
  if (response.status === 401) {
    // The session ended (expired, logged out elsewhere): log in again, then come back.
    const here = location.pathname + location.search;
    location.assign(withQuery("/ui/login", { next: here }));
    throw new ApiError(401, "not logged in");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, describe(response.status, data));
  return data;
}

/** An error answer in one line: FastAPI's detail, a string or a list of fields. */
export function describe(status, data) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => `${(item.loc || []).filter((p) => p !== "body").join(".")}: ${item.msg}`)
      .join("; ");
  }
  return `the server answered ${status}`;
}
