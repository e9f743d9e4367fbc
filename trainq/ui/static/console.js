// A job's console: its last lines, as the job's events bring them (job.js), each shown
// as text; the search box keeps the lines that contain what it holds.

import { byId, el } from "./dom.js";

export const TAIL_LINES = 500;

export class ConsolePanel {
  constructor() {
    this.lines = []; // {attempt, ts, line}
    this.box = byId("console");
    this.search = byId("console-search");
    this.follow = byId("console-follow");
    this.search.addEventListener("input", () => this.draw());
    // Scrolling up stops following the end; scrolling back to it follows again.
    this.box.addEventListener("scroll", () => {
      this.follow.checked = this.atEnd();
    });
  }

  /** Show these lines ({attempt, ts, line}, oldest first) instead. */
  reset(lines) {
    this.lines = lines.slice(-TAIL_LINES);
    this.draw();
  }

  /** Add these lines after the others, keeping the last TAIL_LINES. */
  add(lines) {
    if (!lines.length) return;
    this.lines = this.lines.concat(lines).slice(-TAIL_LINES);
    this.draw();
  }

  draw() {
    const needle = this.search.value.trim().toLowerCase();
    const shown = needle
      ? this.lines.filter((entry) => entry.line.toLowerCase().includes(needle))
      : this.lines;
    const attempts = new Set(this.lines.map((entry) => entry.attempt));
    const nodes = shown.map((entry) => {
      const line = el("div", { class: "line", data: { attempt: entry.attempt ?? "" } });
      if (attempts.size > 1 && entry.attempt !== null) {
        line.append(el("span", { class: "attempt", text: `#${entry.attempt} ` }));
      }
      line.append(document.createTextNode(entry.line));
      return line;
    });
    this.box.replaceChildren(...nodes);
    this.box.dataset.lines = String(this.lines.length);
    this.box.dataset.shown = String(shown.length);
    byId("console-count").textContent = needle
      ? `${shown.length} of ${this.lines.length} lines`
      : `${this.lines.length} lines`;
    if (this.follow.checked) this.box.scrollTop = this.box.scrollHeight;
  }

  atEnd() {
    return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 8;
  }
}
