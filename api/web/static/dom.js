// Building the DOM without HTML strings: every text goes in as a text node, never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(parent, child);
    } else if (child instanceof Node) {
      parent.append(child);
    } else {
      parent.append(document.createTextNode(String(child)));
    }
  }
}

function setAttributes(element, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (name === "class") {
      element.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name === "style") {
      Object.assign(element.style, value);
    } else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

/**
 * An element: `h("button", {class: "button", onClick: go}, "Send")`. Attributes set to null, undefined or false
 * are left out, `true` sets an empty attribute; `on<Event>` functions become listeners; `style` and `dataset`
 * objects are assigned; children are nodes, strings (as text) or arrays of them.
 */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attrs);
  append(element, children);
  return element;
}

/** An inline SVG icon from path data (decorative: hidden from screen readers). */
export function icon(paths, { size = 20, label } = {}) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("class", "icon");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  for (const d of [].concat(paths)) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/** Path data of the icons the pages share. */
export const ICONS = {
  send: ["M22 2 11 13", "M22 2 15 22 11 13 2 9 22 2"],
  thumbUp: ["M7 10v12", "M15 5.9 14 10h5.8a2 2 0 0 1 2 2.3l-1.4 8A2 2 0 0 1 18.4 22H7V10l4-8a3 3 0 0 1 4 3.9z"],
  thumbDown: ["M17 14V2", "M9 18.1 10 14H4.2a2 2 0 0 1-2-2.3l1.4-8A2 2 0 0 1 5.6 2H17v12l-4 8a3 3 0 0 1-4-3.9z"],
  close: ["M18 6 6 18", "M6 6l12 12"],
  person: ["M20 21a8 8 0 0 0-16 0", "M12 13a5 5 0 1 0 0-10 5 5 0 0 0 0 10z"],
  mail: ["M4 4h16v16H4z", "m22 6-10 7L2 6"],
  history: ["M3 12a9 9 0 1 0 3-6.7L3 8", "M3 3v5h5", "M12 7v5l4 2"],
  upload: ["M12 16V4", "m6 10 6-6 6 6", "M4 20h16"],
  check: ["M20 6 9 17l-5-5"],
  alert: ["M12 9v4", "M12 17h.01", "M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"],
};

/** Remove every child of an element. */
export function clear(element) {
  element.replaceChildren();
  return element;
}

/** A date (ISO string) in the reader's language, e.g. "12 mars 2026" / "March 12, 2026". */
export function formatDate(iso, lang, options = { dateStyle: "medium" }) {
  if (!iso) {
    return "";
  }
  const date = new Date(iso.length === 10 ? `${iso}T00:00:00` : iso);
  return Number.isNaN(date.getTime()) ? iso : new Intl.DateTimeFormat(lang, options).format(date);
}

/** Insert a page's stylesheet once (`/static/pages/<name>.css`). */
export function useStylesheet(name) {
  const href = `/static/pages/${name}.css`;
  if (!document.head.querySelector(`link[data-page-style="${name}"]`)) {
    document.head.append(h("link", { rel: "stylesheet", href, dataset: { pageStyle: name } }));
  }
}
