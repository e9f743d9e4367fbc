// The jobs list (/ui/): GET /train with the status, owner and name filters, newest
// first, paged by cursor, polled every 2 s. The name box applies itself 300 ms after
// typing stops; any change of filter goes back to the first page. The server examines
// a bounded number of jobs per request for a name, so a page may come back short with
// more after it: a page is gathered from up to MAX_REQUESTS answers. Ticked rows open
// the compare view.

import { getJSON } from "./api.js";
import {
  byId, el, fmtDuration, fmtNumber, fmtTime, jobLink, markNav, poll, progressCell,
  runTime, showError, statusBadge, syncRows,
} from "./dom.js";

const PAGE_SIZE = 50;
const POLL_MS = 2000;
const MAX_COMPARE = 8;
const NAME_DEBOUNCE_MS = 300;
// Answers gathered into one page when a name filter leaves them short.
const MAX_REQUESTS = 5;

const state = {
  filters: readFilters(),
  cursors: [null], // the cursor of each page visited; the last one is shown
  nextCursor: null,
  selected: new Set(),
  version: 0, // grows with every change of filters or page: older answers are dropped
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
  const asked = state.version;
  const { status, owner, name } = state.filters;
  let cursor = state.cursors[state.cursors.length - 1];
  const jobs = [];
  for (let request = 0; request < MAX_REQUESTS; request += 1) {
    const limit = PAGE_SIZE - jobs.length;
    const page = await getJSON("/train", { status, owner, name, cursor, limit });
    if (asked !== state.version) return; // the filters or the page changed meanwhile
    jobs.push(...page.jobs);
    cursor = page.next_cursor;
    if (!cursor || jobs.length >= PAGE_SIZE) break;
  }
  state.nextCursor = cursor;
  render(jobs);
}

function render(jobs) {
  syncRows(byId("jobs-body"), jobs.map(row), (tr) => tr.dataset.jobId);
  const empty = byId("jobs-empty");
  empty.hidden = jobs.length > 0;
  empty.textContent = state.nextCursor
    ? "No jobs match among those searched so far: the next page searches older ones."
    : "No jobs match.";
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
    applyFilters(form);
  });
  byId("filter-status").addEventListener("change", () => form.requestSubmit());
  let typing = null;
  byId("filter-name").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => applyFilters(form), NAME_DEBOUNCE_MS);
  });
  byId("page-next").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.cursors.push(state.nextCursor);
    showPage();
  });
  byId("page-prev").addEventListener("click", () => {
    if (state.cursors.length > 1) state.cursors.pop();
    showPage();
  });
  byId("page-first").addEventListener("click", () => {
    state.cursors = [null];
    showPage();
  });
  byId("compare-selected").addEventListener("click", () => {
    const ids = [...state.selected].slice(0, MAX_COMPARE);
    location.assign(`/ui/compare?ids=${ids.map(encodeURIComponent).join(",")}`);
  });
}

/** The form's filters, from the first page if they changed; loaded at once. */
function applyFilters(form) {
  const data = new FormData(form);
  const filters = {
    status: data.get("status") || "",
    owner: (data.get("owner") || "").trim(),
    name: (data.get("name") || "").trim(),
  };
  const { status, owner, name } = state.filters;
  if (filters.status !== status || filters.owner !== owner || filters.name !== name) {
    state.filters = filters;
    state.cursors = [null];
    const query = new URLSearchParams(
      Object.entries(filters).filter(([, value]) => value),
    ).toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
  }
  showPage();
}

/** Load the page now (state.cursors' last), dropping any answer under way. */
function showPage() {
  state.version += 1;
  state.nextCursor = null;
  byId("page-next").disabled = true;
  poller.now();
}

let poller = null;
setUp();
poller = poll(load, POLL_MS, (error) => showError("list-error", error));
