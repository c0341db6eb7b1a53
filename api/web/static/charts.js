// Small accessible SVG charts: grouped bars and lines with axes, labels, a <title> and an aria-label.
// The chart is a picture of its table: every page showing one also shows the table with the exact figures.

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 260;
const MARGIN = { top: 16, right: 16, bottom: 56, left: 48 };
// Series colours (classes in dashboard.css): each has at least 3:1 contrast on white, as WCAG asks of graphics.
export const SERIES_CLASSES = ["series-0", "series-1", "series-2", "series-3"];

function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children) {
    element.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return element;
}

/** A round upper bound for the y axis and its ticks (at least 1, so that an all-zero chart still has an axis). */
function scale(values) {
  const top = Math.max(1, ...values.filter((value) => Number.isFinite(value)));
  const magnitude = 10 ** Math.floor(Math.log10(top));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => top / candidate <= 5);
  const max = Math.ceil(top / step) * step;
  const ticks = [];
  for (let tick = 0; tick <= max + step / 2; tick += step) {
    ticks.push(Number(tick.toFixed(6)));
  }
  return { max, ticks };
}

function frame(title, summary, labels, max, ticks, format) {
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "img",
    "aria-label": `${title}. ${summary}`,
    preserveAspectRatio: "xMidYMid meet",
  });
  chart.append(svg("title", {}, title));
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const y = (value) => MARGIN.top + plotHeight - (value / max) * plotHeight;
  const grid = svg("g", { class: "chart-grid", "aria-hidden": "true" });
  for (const tick of ticks) {
    grid.append(
      svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(tick), y2: y(tick) }),
      svg("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "chart-tick" }, format(tick)),
    );
  }
  const band = (WIDTH - MARGIN.left - MARGIN.right) / Math.max(1, labels.length);
  // Long series get every n-th label only, so that labels never overlap.
  const every = Math.max(1, Math.ceil(labels.length / 12));
  const axis = svg("g", { class: "chart-axis", "aria-hidden": "true" });
  axis.append(
    svg("line", {
      x1: MARGIN.left,
      x2: WIDTH - MARGIN.right,
      y1: MARGIN.top + plotHeight,
      y2: MARGIN.top + plotHeight,
    }),
  );
  labels.forEach((label, index) => {
    if (index % every === 0) {
      const x = MARGIN.left + band * (index + 0.5);
      const text = label.length > 14 ? `${label.slice(0, 13)}…` : label;
      axis.append(
        svg(
          "text",
          {
            x,
            y: MARGIN.top + plotHeight + 16,
            "text-anchor": labels.length > 6 ? "end" : "middle",
            transform: labels.length > 6 ? `rotate(-35 ${x} ${MARGIN.top + plotHeight + 16})` : null,
            class: "chart-label",
          },
          text,
        ),
      );
    }
  });
  chart.append(grid, axis);
  return { chart, y, band };
}

function describe(labels, series, format) {
  return series
    .map((one) => `${one.name}: ${labels.map((label, i) => `${label} ${format(one.values[i] ?? 0)}`).join(", ")}`)
    .join("; ");
}

/**
 * Grouped bars: one group per label, one bar per series (`{name, values}`); each bar is a `rect.bar`
 * with its series' class. `format` writes a value (ticks, description).
 */
export function barChart({ title, labels, series, format = String }) {
  const { max, ticks } = scale(series.flatMap((one) => one.values));
  const { chart, y, band } = frame(title, describe(labels, series, format), labels, max, ticks, format);
  const bars = svg("g", { class: "chart-bars" });
  // Bars stay narrow when there are few groups: a wide bar reads as a bigger value.
  const inner = Math.min(band * 0.8, 56 * series.length);
  const width = inner / Math.max(1, series.length);
  labels.forEach((label, index) => {
    series.forEach((one, s) => {
      const value = Number(one.values[index]) || 0;
      const x = MARGIN.left + band * index + (band - inner) / 2 + width * s;
      const rect = svg("rect", {
        x: x + 1,
        y: y(value),
        width: Math.max(1, width - 2),
        height: Math.max(0, y(0) - y(value)),
        class: `bar ${SERIES_CLASSES[s % SERIES_CLASSES.length]}`,
        "data-label": label,
        "data-series": one.name,
        "data-value": value,
      });
      rect.append(svg("title", {}, `${label} · ${one.name}: ${format(value)}`));
      bars.append(rect);
    });
  });
  chart.append(bars);
  return chart;
}

/** Lines: one per series (`{name, values}`), a `circle.point` on every value; a missing value breaks the line. */
export function lineChart({ title, labels, series, format = String }) {
  const known = series.flatMap((one) => one.values).filter((value) => value !== null && value !== undefined);
  const { max, ticks } = scale(known);
  const { chart, y, band } = frame(title, describe(labels, series, format), labels, max, ticks, format);
  series.forEach((one, s) => {
    const colour = SERIES_CLASSES[s % SERIES_CLASSES.length];
    const group = svg("g", { class: `chart-line ${colour}`, "data-series": one.name });
    const segments = [];
    let segment = [];
    one.values.forEach((value, index) => {
      if (value === null || value === undefined) {
        if (segment.length) {
          segments.push(segment);
        }
        segment = [];
        return;
      }
      const x = MARGIN.left + band * (index + 0.5);
      segment.push(`${x.toFixed(1)},${y(value).toFixed(1)}`);
      const point = svg("circle", {
        cx: x,
        cy: y(value),
        r: 4,
        class: "point",
        "data-label": labels[index],
        "data-value": value,
      });
      point.append(svg("title", {}, `${labels[index]} · ${one.name}: ${format(value)}`));
      group.append(point);
    });
    if (segment.length) {
      segments.push(segment);
    }
    group.prepend(svg("path", { d: segments.map((points) => `M${points.join("L")}`).join(" "), class: "line" }));
    chart.append(group);
  });
  return chart;
}

/** The legend of a chart: the series' names with their colour swatch (colour is never the only cue). */
export function legend(names) {
  const list = document.createElement("ul");
  list.className = "chart-legend";
  names.forEach((name, s) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${SERIES_CLASSES[s % SERIES_CLASSES.length]}`;
    swatch.setAttribute("aria-hidden", "true");
    item.append(swatch, document.createTextNode(name));
    list.append(item);
  });
  return list;
}
