// Line charts with uPlot (vendor/uPlot.iife.min.js, loaded before the page's module as
// the global ``uPlot``). The container says what it shows, for people and tests:
// data-points (x values plotted) and data-series (lines).

// Whole steps for the x axis (epochs, steps): 1, 2, 5, 10, 20, 50, ...
const WHOLE_STEPS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6].map((p) => m * p))
  .sort((a, b) => a - b);

const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
  "#8c564b", "#e377c2", "#17becf",
];

export function colour(index) {
  return PALETTE[index % PALETTE.length];
}

export class LineChart {
  /**
   * @param container the element the chart fills (its width)
   * @param xLabel the x axis' name (epoch, step, ...)
   * @param labels one per line
   * @param yLabel the y axis' name
   */
  constructor(container, xLabel, labels, yLabel = "") {
    this.container = container;
    this.xLabel = xLabel;
    this.labels = labels;
    this.yLabel = yLabel;
    this.plot = null;
    this.container.dataset.series = String(labels.length);
    this.container.dataset.points = "0";
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(container);
  }

  options() {
    const many = this.labels.length > 1;
    return {
      width: Math.max(240, this.container.clientWidth),
      height: 260,
      scales: { x: { time: false } },
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: this.xLabel },
        ...this.labels.map((label, index) => ({
          label,
          stroke: colour(many ? index : 0),
          width: 2,
          spanGaps: true,
          points: { size: 5 },
        })),
      ],
      axes: [
        { label: this.xLabel, incrs: WHOLE_STEPS, values: (u, splits) => splits.map(String) },
        { label: this.yLabel, size: 60 },
      ],
    };
  }

  /** Plot ``xs`` (ascending) against each line's values (null: no value there). */
  setData(xs, lines) {
    const data = [xs, ...lines];
    if (this.plot === null) {
      this.plot = new uPlot(this.options(), data, this.container);
    } else {
      this.plot.setData(data);
    }
    this.container.dataset.points = String(xs.length);
  }

  resize() {
    if (this.plot === null) return;
    const width = Math.max(240, this.container.clientWidth);
    if (width !== this.plot.width) this.plot.setSize({ width, height: this.plot.height });
  }

  destroy() {
    this.resizer.disconnect();
    if (this.plot !== null) this.plot.destroy();
    this.plot = null;
    this.container.dataset.points = "0";
  }
}

// Fields of a progress point that say where it is, not what was measured.
const PLACE_FIELDS = new Set(["attempt", "ts", "epoch", "epochs", "step", "trainq"]);

/** The numeric fields measured in ``points``, loss first. */
export function measuredFields(points) {
  const found = new Set();
  for (const point of points) {
    for (const [key, value] of Object.entries(point)) {
      if (!PLACE_FIELDS.has(key) && typeof value === "number" && isFinite(value)) found.add(key);
    }
  }
  return [...found].sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
}

/** What the x axis counts: epoch, else step, else the points' order. */
export function xField(points) {
  if (points.some((p) => typeof p.epoch === "number")) return "epoch";
  if (points.some((p) => typeof p.step === "number")) return "step";
  return "point";
}

/**
 * ``points`` as one value per x: a later point at the same x (a retried attempt
 * that did that epoch again) replaces an earlier one. Returns [xs, byX] sorted by x.
 */
export function byX(points, field) {
  const seen = new Map();
  points.forEach((point, index) => {
    const x = field === "point" ? index + 1 : point[field];
    if (typeof x === "number" && isFinite(x)) seen.set(x, point);
  });
  const xs = [...seen.keys()].sort((a, b) => a - b);
  return [xs, seen];
}
