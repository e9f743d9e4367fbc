// A job's metric charts, from the points the job's events bring (job.js): one chart per
// measured field the reader ticks (loss by default), x = epoch.

import { LineChart, byX, measuredFields, xField } from "./chart.js";
import { byId, el } from "./dom.js";

export class MetricsPanel {
  constructor() {
    this.points = [];
    this.fields = [];
    this.shown = new Set(["loss"]);
    this.charts = new Map(); // field → LineChart
    this.xField = "epoch";
  }

  /** Show these points (oldest first) instead. */
  reset(points) {
    this.points = points.slice();
    this.draw();
  }

  /** Add newer points. */
  add(points) {
    if (!points.length) return;
    this.points.push(...points);
    this.draw();
  }

  draw() {
    byId("metrics-empty").hidden = this.points.length > 0;
    const fields = measuredFields(this.points);
    if (fields.join() !== this.fields.join()) {
      this.fields = fields;
      if (![...this.shown].some((field) => fields.includes(field)) && fields.length) {
        this.shown.add(fields[0]);
      }
      this.drawPicker();
    }
    const field = xField(this.points);
    if (field !== this.xField) {
      this.xField = field;
      for (const chart of this.charts.values()) chart.destroy();
      this.charts.clear();
      byId("charts").replaceChildren();
    }
    const [xs, points] = byX(this.points, this.xField);
    for (const name of this.fields) {
      if (!this.shown.has(name)) continue;
      const chart = this.chartOf(name);
      chart.setData(xs, [xs.map((x) => valueOf(points.get(x), name))]);
    }
  }

  chartOf(name) {
    let chart = this.charts.get(name);
    if (chart) return chart;
    const box = el("div", { class: "chart", id: `chart-${name}`, data: { metric: name } });
    const panel = el("figure", { class: "chart-panel", data: { metric: name } },
      el("figcaption", { text: name }), box);
    // Keep the panels in the fields' order (loss first).
    const after = this.fields.slice(this.fields.indexOf(name) + 1);
    const next = [...byId("charts").children].find((node) => after.includes(node.dataset.metric));
    byId("charts").insertBefore(panel, next || null);
    chart = new LineChart(box, this.xField, [name], name);
    this.charts.set(name, chart);
    return chart;
  }

  drawPicker() {
    const boxes = this.fields.map((name) => {
      const tick = el("input", { type: "checkbox", value: name, data: { metric: name } });
      tick.checked = this.shown.has(name);
      tick.addEventListener("change", () => this.toggle(name, tick.checked));
      return el("label", { class: "pick-metric" }, tick, ` ${name}`);
    });
    byId("metric-picker").replaceChildren(...boxes);
  }

  toggle(name, on) {
    if (on) {
      this.shown.add(name);
    } else {
      this.shown.delete(name);
      const chart = this.charts.get(name);
      if (chart) {
        chart.destroy();
        chart.container.parentElement.remove();
        this.charts.delete(name);
      }
    }
    this.draw();
  }
}

function valueOf(point, name) {
  const value = point ? point[name] : null;
  return typeof value === "number" && isFinite(value) ? value : null;
}
