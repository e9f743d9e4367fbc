// The jobs list (/ui/): GET /train with the status and owner filters, newest first,
// paged by cursor, polled every 2 s. "Name contains" filters the page shown (the API
// has no name filter). Ticked rows open the compare view.

import { getJSON } from "./api.js";
import {
  byId, el, fmtDuration, fmtNumber, fmtTime, jobLink, markNav, poll, progressCell,
  runTime, showError, statusBadge, syncRows,
} from "./dom.js";

const PAGE_SIZE = 50;
const POLL_MS = 2000;
const MAX_COMPARE = 8;

const state = {
  filters: readFilters(),
  cursors: [null], // the cursor of each page visited; the last one is shown
  nextCursor: null,
  selected: new Set(),
};

function readFilters() {
  const query = new URLSearchParams(location.search);
  return {
    status: query.get("status") || "",
    owner: query.get("owner") || "",
    name: query.get("name") || "",
  };
}

async function load() {
  const { status, owner, name } = state.filters;
  const cursor = state.cursors[state.cursors.length - 1];
  const page = await getJSON("/train", { status, owner, cursor, limit: PAGE_SIZE });
  const needle = name.toLowerCase();
  const jobs = needle
    ? page.jobs.filter((job) => (job.spec.name || "").toLowerCase().includes(needle))
    : page.jobs;
  state.nextCursor = page.next_cursor;
  render(jobs);
}

function render(jobs) {
  syncRows(byId("jobs-body"), jobs.map(row), (tr) => tr.dataset.jobId);
  byId("jobs-empty").hidden = jobs.length > 0;
  byId("page-next").disabled = !state.nextCursor;
  byId("page-prev").disabled = state.cursors.length < 2;
  byId("page-first").disabled = state.cursors.length < 2;
  byId("page-number").textContent = `page ${state.cursors.length}`;
  updateCompareButton();
}

function row(job) {
  const attempt = job.attempts.length ? job.attempts[job.attempts.length - 1] : null;
  const tick = el("input", {
    type: "checkbox",
    class: "pick",
    "aria-label": `select ${job.spec.name || job.id}`,
    data: { id: job.id },
  });
  tick.checked = state.selected.has(job.id);
  tick.addEventListener("change", () => {
    if (tick.checked) state.selected.add(job.id);
    else state.selected.delete(job.id);
    updateCompareButton();
  });
  const loss = job.progress && typeof job.progress.loss === "number" ? job.progress.loss : null;
  return el(
    "tr",
    { data: { jobId: job.id, status: job.status } },
    el("td", {}, tick),
    el("td", { class: "name" }, jobLink(job)),
    el("td", { text: job.owner || "" }),
    el("td", {}, statusBadge(job.status)),
    el("td", {}, progressCell(job)),
    el("td", { class: "num loss", text: fmtNumber(loss) }),
    el("td", { class: "num", text: fmtDuration(runTime(job)) }),
    el("td", { text: (attempt && attempt.host) || job.spec.host || "" }),
    el("td", { text: gpus(job, attempt) }),
    el("td", { text: fmtTime(job.created_at) }),
  );
}

function gpus(job, attempt) {
  if (attempt && attempt.gpu_ids && attempt.gpu_ids.length) return attempt.gpu_ids.join(",");
  if (!job.spec.gpu) return "none";
  const wanted = job.spec.gpu_ids.length || job.spec.gpus || 1;
  return `${wanted} wanted`;
}

function updateCompareButton() {
  const button = byId("compare-selected");
  const count = state.selected.size;
  button.disabled = count < 2 || count > MAX_COMPARE;
  button.textContent = count ? `Compare selected (${count})` : "Compare selected";
}

function setUp() {
  markNav();
  const form = byId("filters");
  byId("filter-status").value = state.filters.status;
  byId("filter-owner").value = state.filters.owner;
  byId("filter-name").value = state.filters.name;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    state.filters = {
      status: data.get("status") || "",
      owner: (data.get("owner") || "").trim(),
      name: (data.get("name") || "").trim(),
    };
    state.cursors = [null];
    const query = new URLSearchParams(
      Object.entries(state.filters).filter(([, value]) => value),
    ).toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
    poller.now();
  });
  byId("filter-status").addEventListener("change", () => form.requestSubmit());
  byId("page-next").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.cursors.push(state.nextCursor);
    poller.now();
  });
  byId("page-prev").addEventListener("click", () => {
    if (state.cursors.length > 1) state.cursors.pop();
    poller.now();
  });
  byId("page-first").addEventListener("click", () => {
    state.cursors = [null];
    poller.now();
  });
  byId("compare-selected").addEventListener("click", () => {
    const ids = [...state.selected].slice(0, MAX_COMPARE);
    location.assign(`/ui/compare?ids=${ids.map(encodeURIComponent).join(",")}`);
  });
}

let poller = null;
setUp();
poller = poll(load, POLL_MS, (error) => showError("list-error", error));
