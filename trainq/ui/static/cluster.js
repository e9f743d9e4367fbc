// The cluster (/ui/cluster): GET /stats (jobs by status, queue depths, live workers and
// their GPUs, per-user usage), the running jobs (GET /train?status=running) placed on
// their workers' GPUs, and the pending queue in admission order (GET /queue). A link to
// Flower, on this host at the configured port (the page's data-flower-port).

import { getJSON } from "./api.js";
import {
  byId, el, fmtNumber, fmtTime, jobLink, markNav, poll, progressCell, showError, syncRows,
} from "./dom.js";

const POLL_MS = 3000;

async function refresh() {
  const [stats, running, pending] = await Promise.all([
    getJSON("/stats"),
    getJSON("/train", { status: "running", limit: 500 }),
    getJSON("/queue", { limit: 200 }),
  ]);
  drawCounts(stats.jobs);
  drawWorkers(stats.workers, running.jobs);
  drawRunning(running.jobs);
  drawQueues(stats.queues);
  drawPending(pending);
  drawUsers(stats.users || []);
}

function drawCounts(jobs) {
  byId("job-counts").replaceChildren(...Object.entries(jobs).map(([status, count]) =>
    el("span", { class: "count", data: { status } },
      el("span", { class: "status", text: status, data: { status } }), ` ${count}`)));
}

/** The current attempt of a running job, if it has one. */
function attemptOf(job) {
  return job.attempts.length ? job.attempts[job.attempts.length - 1] : null;
}

function drawWorkers(workers, running) {
  const rows = workers.map((worker) => {
    const mine = running.filter((job) => (attemptOf(job) || {}).worker === worker.name);
    const gpuCells = worker.gpus.map((gpu) => {
      const job = mine.find((j) => (attemptOf(j).gpu_ids || []).includes(gpu));
      return el("li", { data: { gpu } }, `GPU ${gpu}: `,
        job ? jobLink(job) : el("span", { class: "muted", text: "free" }));
    });
    const cpuJobs = mine.filter((job) => !(attemptOf(job).gpu_ids || []).length);
    const jobsCell = el("ul", { class: "gpus" }, ...gpuCells,
      ...cpuJobs.map((job) => el("li", {}, "CPU: ", jobLink(job))));
    const problems = [worker.runtime_error, worker.store_error].filter(Boolean).join("; ");
    return el("tr", { data: { worker: worker.name } },
      el("td", { text: worker.name }),
      el("td", { text: worker.hostname }),
      el("td", { class: "wrap", text: worker.queues.join(", ") }),
      el("td", { text: worker.runtime }),
      el("td", { class: "num", text: `${mine.length}/${worker.concurrency}` }),
      el("td", {}, jobsCell),
      el("td", { class: "wrap problem", text: problems }));
  });
  syncRows(byId("workers-body"), rows, (tr) => tr.dataset.worker);
  byId("workers-empty").hidden = rows.length > 0;
}

function drawRunning(jobs) {
  syncRows(byId("running-body"), jobs.map((job) => {
    const attempt = attemptOf(job) || {};
    return el("tr", { data: { jobId: job.id } },
      el("td", {}, jobLink(job)),
      el("td", { text: job.owner || "" }),
      el("td", { text: attempt.worker || "" }),
      el("td", { text: attempt.host || "" }),
      el("td", { text: (attempt.gpu_ids || []).join(",") }),
      el("td", {}, progressCell(job)));
  }), (tr) => tr.dataset.jobId);
}

function drawQueues(queues) {
  syncRows(byId("queues-body"), Object.entries(queues).map(([queue, depth]) =>
    el("tr", { data: { queue } }, el("td", { text: queue }), el("td", { class: "num", text: depth }))),
  (tr) => tr.dataset.queue);
}

function drawPending(pending) {
  syncRows(byId("pending-body"), pending.jobs.map((job) =>
    el("tr", { data: { jobId: job.id } },
      el("td", { class: "num", text: job.position }),
      el("td", {}, jobLink(job)),
      el("td", { text: job.owner }),
      el("td", { text: job.priority }),
      el("td", { text: job.queue }),
      el("td", { text: fmtTime(job.created_at) }),
      el("td", { class: "wrap", text: job.reason }))), (tr) => tr.dataset.jobId);
  byId("pending-total").textContent = `${pending.total} pending`;
}

function drawUsers(users) {
  syncRows(byId("users-body"), users.map((user) => {
    const jobs = Object.entries(user.jobs).filter(([, n]) => n).map(([s, n]) => `${s} ${n}`).join(", ");
    const quota = [
      user.quota_gpus === null ? null : `${user.quota_gpus} GPUs`,
      user.quota_jobs === null ? null : `${user.quota_jobs} jobs`,
    ].filter(Boolean).join(", ") || "none";
    return el("tr", { data: { user: user.name } },
      el("td", { text: user.name }),
      el("td", { class: "wrap", text: jobs }),
      el("td", { class: "num", text: user.running_jobs }),
      el("td", { class: "num", text: user.running_gpus }),
      el("td", { class: "num", text: fmtNumber(user.gpu_hours) }),
      el("td", { class: "num", text: fmtNumber(user.cpu_hours) }),
      el("td", { class: "num", text: fmtNumber(user.usage_gpu_hours) }),
      el("td", { class: "num", text: fmtNumber(user.standing) }),
      el("td", { class: "num", text: fmtNumber(user.weight) }),
      el("td", { text: quota }));
  }), (tr) => tr.dataset.user);
}

function flowerLink() {
  const port = document.body.dataset.flowerPort;
  const link = byId("flower-link");
  link.href = `${location.protocol}//${location.hostname}:${port}/`;
  link.title = "Flower shows the Celery tasks; it has its own login";
}

markNav();
flowerLink();
poll(refresh, POLL_MS, (error) => showError("cluster-error", error));
