// Compare (/ui/compare?ids=a,b,...): 2 to 8 jobs' curves overlaid (one line per job,
// x = epoch, from GET /train/{id}/metrics), the hyperparameters that differ and the
// final metrics (their records' result). Without ids: pick jobs from the newest 50.

import { getJSON } from "./api.js";
import { LineChart, byX, measuredFields } from "./chart.js";
import {
  TERMINAL, byId, el, flatten, fmtDuration, fmtNumber, fmtTime, jobLink, markNav, poll,
  runTime, showError, statusBadge, syncRows,
} from "./dom.js";

const MIN_JOBS = 2;
const MAX_JOBS = 8;
const POLL_MS = 2000;

const state = { jobs: [], series: new Map(), metric: "loss", chart: null, poller: null };

function idsAsked() {
  const text = new URLSearchParams(location.search).get("ids") || "";
  return [...new Set(text.split(",").map((id) => id.trim()).filter(Boolean))];
}

async function showPicker() {
  byId("picker").hidden = false;
  const page = await getJSON("/train", { limit: 50 });
  const chosen = new Set();
  const button = byId("pick-compare");
  const rows = page.jobs.map((job) => {
    const tick = el("input", { type: "checkbox", class: "pick", data: { id: job.id } });
    tick.addEventListener("change", () => {
      if (tick.checked) chosen.add(job.id);
      else chosen.delete(job.id);
      button.disabled = chosen.size < MIN_JOBS || chosen.size > MAX_JOBS;
    });
    const loss = job.progress ? job.progress.loss : null;
    return el("tr", { data: { jobId: job.id } },
      el("td", {}, tick),
      el("td", {}, jobLink(job)),
      el("td", { text: job.owner || "" }),
      el("td", {}, statusBadge(job.status)),
      el("td", { class: "num", text: fmtNumber(loss) }),
      el("td", { text: fmtTime(job.created_at) }));
  });
  byId("pick-body").replaceChildren(...rows);
  button.addEventListener("click", () => {
    location.assign(`/ui/compare?ids=${[...chosen].map(encodeURIComponent).join(",")}`);
  });
}

async function load(ids) {
  const found = await Promise.allSettled(ids.map(async (id) => {
    const path = `/train/${encodeURIComponent(id)}`;
    const [job, metrics] = await Promise.all([getJSON(path), getJSON(`${path}/metrics`)]);
    return { job, points: metrics.points || [] };
  }));
  const problems = [];
  state.jobs = [];
  found.forEach((outcome, index) => {
    if (outcome.status === "fulfilled") {
      state.jobs.push(outcome.value.job);
      state.series.set(outcome.value.job.id, outcome.value.points);
    } else {
      problems.push(`${ids[index]}: ${outcome.reason.detail || outcome.reason.message}`);
    }
  });
  showError("compare-error", problems.length ? new Error(problems.join("; ")) : null);
  draw();
  if (state.jobs.every((job) => TERMINAL.has(job.status)) && state.poller) state.poller.stop();
}

function labels() {
  const names = state.jobs.map((job) => job.spec.name || job.id.slice(0, 8));
  return names.map((name, index) =>
    names.indexOf(name) !== names.lastIndexOf(name) ? `${name} (${state.jobs[index].id.slice(0, 8)})` : name);
}

function draw() {
  byId("compared").hidden = false;
  drawMetricChoice();
  drawChart();
  drawDiff();
  drawFinal();
}

function drawMetricChoice() {
  const fields = new Set();
  for (const points of state.series.values()) for (const f of measuredFields(points)) fields.add(f);
  const select = byId("compare-metric");
  const names = [...fields];
  if (names.join() === [...select.options].map((o) => o.value).join()) return;
  if (!names.includes(state.metric) && names.length) state.metric = names[0];
  select.replaceChildren(...names.map((name) => el("option", { value: name, text: name })));
  select.value = state.metric;
}

function drawChart() {
  const all = state.jobs.map((job) => byX(state.series.get(job.id) || [], "epoch"));
  const xs = [...new Set(all.flatMap(([jobXs]) => jobXs))].sort((a, b) => a - b);
  const lines = all.map(([, points]) => xs.map((x) => {
    const value = points.has(x) ? points.get(x)[state.metric] : null;
    return typeof value === "number" && isFinite(value) ? value : null;
  }));
  const box = byId("compare-chart");
  const names = labels();
  if (!state.chart || state.chart.labels.join() !== names.join() || state.chart.yLabel !== state.metric) {
    if (state.chart) state.chart.destroy();
    box.replaceChildren();
    state.chart = new LineChart(box, "epoch", names, state.metric);
  }
  state.chart.setData(xs, lines);
}

function headRow() {
  return el("tr", { data: { key: "head" } }, el("th", { text: "" }),
    ...state.jobs.map((job) => el("th", {}, jobLink(job))));
}

function drawDiff() {
  const flat = state.jobs.map((job) => new Map(flatten(job.spec)));
  const keys = [...new Set(flat.flatMap((rows) => [...rows.keys()]))].sort();
  const differing = keys.filter((key) => new Set(flat.map((rows) => rows.get(key) ?? "")).size > 1);
  syncRows(byId("diff-head"), [headRow()]);
  syncRows(byId("diff-body"), differing.map((key) =>
    el("tr", { data: { key } }, el("th", { text: key }),
      ...flat.map((rows) => el("td", { class: "wrap", text: rows.get(key) ?? "" })))));
  byId("diff-none").hidden = differing.length > 0;
}

function drawFinal() {
  const results = state.jobs.map((job) => job.result || {});
  const numeric = [...new Set(results.flatMap((result) =>
    Object.keys(result).filter((key) => typeof result[key] === "number")))].sort();
  const rows = [
    ["status", state.jobs.map((job) => statusBadge(job.status))],
    ["run time", state.jobs.map((job) => fmtDuration(runTime(job)))],
    ["latest loss", state.jobs.map((job) => fmtNumber(job.progress ? job.progress.loss : null))],
    ...numeric.map((key) => [key, results.map((result) => fmtNumber(result[key]))]),
  ];
  syncRows(byId("final-head"), [headRow()]);
  syncRows(byId("final-body"), rows.map(([key, cells]) =>
    el("tr", { data: { key } }, el("th", { text: key }),
      ...cells.map((cell) => (typeof cell === "string" ? el("td", { text: cell }) : el("td", {}, cell))))));
}

function main() {
  markNav();
  const ids = idsAsked();
  if (ids.length < MIN_JOBS) {
    if (ids.length) showError("compare-error", new Error(`pick at least ${MIN_JOBS} jobs`));
    showPicker().catch((error) => showError("compare-error", error));
    return;
  }
  if (ids.length > MAX_JOBS) {
    showError("compare-error", new Error(`at most ${MAX_JOBS} jobs: comparing the first ${MAX_JOBS}`));
  }
  byId("compare-metric").addEventListener("change", (event) => {
    state.metric = event.target.value;
    drawChart();
  });
  const shown = ids.slice(0, MAX_JOBS);
  state.poller = poll(() => load(shown), POLL_MS, (error) => error && showError("compare-error", error));
}

main();
