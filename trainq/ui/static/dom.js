// Building the page: elements whose text is always set with textContent (never HTML),
// the formats the tables share, and a poller that never overlaps its own calls.

/**
 * A new element. ``props``: ``class``, ``text`` (textContent), ``data`` (data-*
 * attributes), anything else as an attribute. ``children``: nodes or strings (text).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "data") {
      for (const [name, item] of Object.entries(value)) node.dataset[name] = String(item);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** The element with this id. */
export function byId(id) {
  return document.getElementById(id);
}

/** Set an element's text (an empty string for null). */
export function setText(idOrNode, value) {
  const node = typeof idOrNode === "string" ? byId(idOrNode) : idOrNode;
  node.textContent = value === null || value === undefined ? "" : String(value);
}

/**
 * Make ``body``'s rows those of ``rows`` (fresh <tr>s) without rebuilding what did not
 * change: a row whose key (``keyOf``) was there already is kept, and only its cells
 * that differ are replaced, so a click, a ticked box or a selection survives a poll.
 */
export function syncRows(body, rows, keyOf = (tr) => tr.dataset.key) {
  const old = new Map([...body.children].map((tr) => [keyOf(tr), tr]));
  const result = rows.map((fresh) => {
    const existing = old.get(keyOf(fresh));
    if (existing === undefined) return fresh;
    patchRow(existing, fresh);
    return existing;
  });
  const keep = new Set(result);
  for (const tr of [...body.children]) if (!keep.has(tr)) tr.remove();
  result.forEach((tr, index) => {
    if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] || null);
  });
}

function patchRow(old, fresh) {
  for (const name of old.getAttributeNames()) {
    if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const name of fresh.getAttributeNames()) {
    if (old.getAttribute(name) !== fresh.getAttribute(name)) old.setAttribute(name, fresh.getAttribute(name));
  }
  const cells = [...fresh.children];
  if (old.children.length !== cells.length) {
    old.replaceChildren(...cells);
    return;
  }
  cells.forEach((cell, index) => {
    const current = old.children[index];
    if (!current.isEqualNode(cell)) current.replaceWith(cell);
  });
}

/** Show an error (or clear it with ""). */
export function showError(id, error) {
  setText(id, error ? (error.detail || error.message || String(error)) : "");
}

/** A status badge: its text, and data-status for its colour. */
export function statusBadge(status) {
  return el("span", { class: "status", text: status, data: { status } });
}

/** A link to a job's page: its name, else its id's first characters. */
export function jobLink(job) {
  const label = (job.spec && job.spec.name) || job.name || job.id.slice(0, 8);
  return el("a", { href: `/ui/jobs/${encodeURIComponent(job.id)}`, text: label, title: job.id });
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);

export function fmtTime(ts) {
  if (ts === null || ts === undefined) return "";
  return new Date(ts * 1000).toLocaleString();
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(rest).padStart(2, "0")}s`;
  return `${rest}s`;
}

export function fmtNumber(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "number" || !isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  // Four significant digits, without trailing zeros: 0.001, 0.2644, 6.465e+4 → 64650.
  return String(Number(value.toPrecision(4)));
}

export function fmtBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} B`;
}

/** An object as [key, text] rows: nested objects as dotted keys, lists as JSON. */
export function flatten(object, prefix = "") {
  const rows = [];
  for (const [key, value] of Object.entries(object)) {
    const name = prefix + key;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      rows.push(...flatten(value, `${name}.`));
    } else if (Array.isArray(value)) {
      rows.push([name, JSON.stringify(value)]);
    } else if (typeof value === "number") {
      rows.push([name, fmtNumber(value)]);
    } else {
      rows.push([name, value === null ? "" : String(value)]);
    }
  }
  return rows;
}

/** A job's run time: from its start to its end, or to now while it runs. */
export function runTime(job) {
  if (!job.started_at) return null;
  const end = job.finished_at || Date.now() / 1000;
  return end - job.started_at;
}

/** A job's progress bar (``<progress value max>``) and "epoch/epochs". */
export function progressCell(job) {
  const progress = job.progress || {};
  const epochs = progress.epochs || (job.spec && job.spec.epochs) || 0;
  const epoch = progress.epoch || 0;
  const bar = el("progress", {
    max: Math.max(1, epochs),
    value: Math.min(epoch, Math.max(1, epochs)),
    data: { epoch, epochs },
  });
  return el("span", { class: "progress-cell" }, bar, el("span", { text: ` ${epoch}/${epochs}` }));
}

/**
 * Call ``fn`` now and every ``intervalMs`` after the last call ended (never two at
 * once), until ``stop()``; a call's error goes to ``onError``.
 */
export function poll(fn, intervalMs, onError = () => {}) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;
  async function tick() {
    running = true;
    try {
      await fn();
      onError(null);
    } catch (error) {
      onError(error);
    }
    running = false;
    if (stopped) return;
    if (again) {
      again = false;
      tick();
    } else {
      timer = setTimeout(tick, intervalMs);
    }
  }
  tick();
  return {
    /** No more calls. */
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    /** Call it again at once (after the call under way, if one is). */
    now() {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      clearTimeout(timer);
      tick();
    },
  };
}

/** Mark the header's link of this page as the current one. */
export function markNav() {
  const page = document.body.dataset.page;
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.nav === page) link.setAttribute("aria-current", "page");
  }
}
