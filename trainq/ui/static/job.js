// A job's page (/ui/jobs/{id}): one server-sent event stream, GET /train/{id}/events,
// brings its record (status, reason, progress, attempts, spec, result), its metric
// points and its console lines as they change (metrics.js, console.js); its artifacts
// are read when their count changes; Cancel (DELETE /train/{id}) and Clone (clone.js).
// The stream ends once the job has; the browser reconnects a stream that broke, and the
// server starts it again with a snapshot.

import { getJSON, send } from "./api.js";
import { CloneForm } from "./clone.js";
import { ConsolePanel } from "./console.js";
import {
  TERMINAL, byId, el, flatten, fmtBytes, fmtDuration, fmtNumber, fmtTime, markNav,
  runTime, setText, showError, syncRows,
} from "./dom.js";
import { MetricsPanel } from "./metrics.js";

const RETRY_MS = 5000; // before following again after the server refused the stream
const jobId = decodeURIComponent(location.pathname.replace(/^\/ui\/jobs\//, ""));
const base = `/train/${encodeURIComponent(jobId)}`;

const metrics = new MetricsPanel();
const consolePanel = new ConsolePanel();
const clone = new CloneForm();
let artifactCount = -1;
let job = null;

function showJob(seen) {
  job = seen;
  renderSummary(job);
  renderAttempts(job);
  renderTable("spec-body", flatten(job.spec));
  renderTable("result-body", flatten(job.result || {}));
  clone.setSpec(job.spec);
  if (job.artifacts.length !== artifactCount) {
    artifactCount = job.artifacts.length;
    refreshArtifacts().catch((error) => showError("job-error", error));
  }
}

function renderSummary(job) {
  const name = job.spec.name || job.id;
  document.title = `${name} · trainq`;
  setText("job-title", name);
  const status = byId("job-status");
  status.textContent = job.status;
  status.dataset.status = job.status;
  setText("job-id", job.id);
  setText("job-owner", job.owner || "");
  setText("job-priority", `${job.spec.priority}${job.spec.preemptible ? "" : " (not preemptible)"}`);
  setText("job-queue", job.queue || "");
  setText("job-waiting", job.waiting || "");
  const progress = job.progress || {};
  const epochs = progress.epochs || job.spec.epochs;
  const epoch = progress.epoch || 0;
  const bar = byId("job-progress");
  bar.max = Math.max(1, epochs);
  bar.value = Math.min(epoch, bar.max);
  bar.dataset.epoch = String(epoch);
  bar.dataset.epochs = String(epochs);
  const eta = progress.eta_s && !TERMINAL.has(job.status) ? `, about ${fmtDuration(progress.eta_s)} left` : "";
  setText("job-progress-text", `epoch ${epoch} of ${epochs}${eta}`);
  setText("job-loss", fmtNumber(progress.loss));
  setText("job-created", fmtTime(job.created_at));
  setText("job-runtime", fmtDuration(runTime(job)));
  setText("job-failure", job.error || "");
  byId("cancel").hidden = TERMINAL.has(job.status);
}

function renderAttempts(job) {
  const rows = job.attempts.map((a) =>
    el("tr", { data: { attempt: a.number } },
      el("td", { text: a.number }),
      el("td", { text: a.host || "" }),
      el("td", { text: a.worker || "" }),
      el("td", { text: (a.gpu_ids || []).join(",") }),
      el("td", { text: fmtTime(a.started_at) }),
      el("td", { text: fmtTime(a.ended_at) }),
      el("td", { class: "num", text: fmtDuration(a.run_s ?? (a.started_at ? (a.ended_at || Date.now() / 1000) - a.started_at : null)) }),
      el("td", { class: "num", text: a.exit_code ?? "" }),
      el("td", { text: a.failure_class || "" }),
      el("td", { class: "wrap", text: a.error || a.artifact_error || "" }),
    ));
  syncRows(byId("attempts-body"), rows, (tr) => tr.dataset.attempt);
  renderTimeline(job);
}

/** One bar per attempt, placed on the time from the job's creation to now (or its end). */
function renderTimeline(job) {
  const start = job.created_at;
  const end = job.finished_at || Date.now() / 1000;
  const span = Math.max(1, end - start);
  const bars = job.attempts.filter((a) => a.started_at).map((a) => {
    const bar = el("div", {
      class: "bar",
      title: `attempt ${a.number}${a.failure_class ? `: ${a.failure_class}` : ""}`,
      data: { outcome: a.failure_class || (a.ended_at ? "ended" : "running") },
    }, el("span", { text: `#${a.number}` }));
    const from = ((a.started_at - start) / span) * 100;
    const to = (((a.ended_at || end) - start) / span) * 100;
    bar.style.left = `${from}%`;
    bar.style.width = `${Math.max(0.5, to - from)}%`;
    return bar;
  });
  byId("timeline").replaceChildren(...bars);
}

function renderTable(id, pairs) {
  const rows = pairs.map(([key, value]) =>
    el("tr", { data: { key } }, el("th", { text: key }), el("td", { class: "wrap", text: value })));
  syncRows(byId(id), rows);
}

async function refreshArtifacts() {
  const listed = await getJSON(`${base}/artifacts`);
  const rows = listed.artifacts.map((a) => {
    const href = `${base}/artifacts/${a.path.split("/").map(encodeURIComponent).join("/")}`;
    return el("tr", {},
      el("td", {}, el("a", { href, download: a.path.split("/").pop(), text: a.path })),
      el("td", { class: "num", text: fmtBytes(a.size) }),
      el("td", { class: "num", text: a.attempt }),
      el("td", { class: "hash", text: a.sha256.slice(0, 12), title: a.sha256 }));
  });
  byId("artifacts-body").replaceChildren(...rows);
  byId("artifacts-empty").hidden = rows.length > 0;
}

async function cancel() {
  const name = job ? job.spec.name || job.id : jobId;
  if (!confirm(`Cancel job ${name}? A running job is stopped.`)) return;
  try {
    showJob(await send("DELETE", base));
    showError("job-error", null);
  } catch (error) {
    showError("job-error", error);
  }
}

/** The job's events until it has ended: a snapshot, then what changes. */
function follow() {
  const events = new EventSource(`${base}/events`);
  const on = (name, show) =>
    events.addEventListener(name, (event) => show(JSON.parse(event.data)));
  on("snapshot", (seen) => {
    showError("job-error", null);
    showJob(seen.job);
    metrics.reset(seen.points);
    consolePanel.reset(seen.lines);
  });
  on("job", (seen) => {
    showError("job-error", null);
    showJob(seen);
  });
  on("points", (points) => metrics.add(points));
  on("lines", (lines) => consolePanel.add(lines));
  on("problem", (problem) => showError("job-error", problem.detail && new Error(problem.detail)));
  on("end", () => events.close());
  events.onerror = async () => {
    if (events.readyState !== EventSource.CLOSED) return; // the browser reconnects
    // The server refused the stream: ask why (401: log in again; 404: no such job).
    try {
      await getJSON(base);
    } catch (error) {
      showError("job-error", error);
      if (error.status === 404 || error.status === 401) return;
    }
    setTimeout(follow, RETRY_MS);
  };
}

markNav();
byId("cancel").addEventListener("click", cancel);
follow();
// A running job's run time and timeline move on between its events.
setInterval(() => {
  if (!job || TERMINAL.has(job.status)) return;
  setText("job-runtime", fmtDuration(runTime(job)));
  renderTimeline(job);
}, 1000);
