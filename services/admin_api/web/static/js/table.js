// Rendering the sessions table: sortable, filterable headers and one row per session.
import { typeLabel } from "./columns.js";
import { el, replaceChildren } from "./dom.js";
import { timeElement } from "./timefmt.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function funnelIcon() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", "M1 2h14l-5.5 6.5V14l-3-1.5V8.5z");
  svg.append(path);
  return svg;
}

const SORT_MARK = { ascending: "▲", descending: "▼", none: "↕" };

/** The header row: select-all, then each visible column with a sort button and a filter button. */
export function renderHeader(row, { columns, query, selectAll, onSelectAll, onSort, onFilter }) {
  const box = el("input", {
    type: "checkbox",
    id: "select-all",
    "aria-label": "Select all loaded sessions",
    checked: selectAll === "all",
    onchange: (event) => onSelectAll(event.target.checked),
  });
  box.indeterminate = selectAll === "some";
  const cells = [el("th", { scope: "col", class: "select-col" }, box)];
  for (const column of columns) {
    const state = query.sortState(column.key);
    const filtered = Boolean(query.filter(column.key));
    cells.push(
      el(
        "th",
        { scope: "col", "aria-sort": state === "none" ? null : state, dataset: { column: column.key } },
        el(
          "div",
          { class: "th" },
          el(
            "button",
            { type: "button", class: "sort-button", onclick: () => onSort(column.key) },
            el("span", { class: "column-label" }, column.label),
            el("span", { class: `sort-mark sort-${state}`, "aria-hidden": "true" }, SORT_MARK[state]),
          ),
          el(
            "button",
            {
              type: "button",
              class: filtered ? "filter-button active" : "filter-button",
              "aria-label": filtered ? `Filter ${column.label} (active)` : `Filter ${column.label}`,
              "aria-haspopup": "dialog",
              title: `Filter ${column.label}`,
              onclick: () => onFilter(column),
            },
            funnelIcon(),
          ),
        ),
      ),
    );
  }
  replaceChildren(row, cells);
}

function cell(column, item, onOpen) {
  switch (column.key) {
    case "user_name":
      return el(
        "td",
        { class: "name-cell" },
        el("button", { type: "button", class: "link-button", onclick: () => onOpen(item) }, item.user_name),
        item.policy_outdated
          ? el(
              "span",
              { class: "badge badge-warn", title: "Created under session settings that are no longer current" },
              "Outdated settings",
            )
          : null,
      );
    case "session_type":
      return el("td", {}, typeLabel(item.session_type));
    case "created_at":
    case "last_activity_at":
    case "expires_at":
      return el("td", { class: "time-cell" }, timeElement(item[column.key]));
    case "session_id":
      return el("td", { class: "mono" }, item.session_id);
    default:
      return el("td", {}, item[column.key] == null || item[column.key] === "" ? "—" : item[column.key]);
  }
}

/** One row: a selection checkbox and the visible columns; clicking the row opens its details. */
export function renderRow(item, { columns, selected, onToggle, onOpen }) {
  const label = `Select ${item.user_name}, ${typeLabel(item.session_type)} session ${item.session_id}`;
  const row = el(
    "tr",
    {
      class: selected ? "selected" : "",
      dataset: { sessionId: item.session_id },
      onclick: (event) => {
        if (event.target.closest("input, button, a, label")) return;
        onOpen(item);
      },
    },
    el(
      "td",
      { class: "select-col" },
      el("input", {
        type: "checkbox",
        class: "row-select",
        "aria-label": label,
        checked: selected,
        onchange: (event) => onToggle(item, event.target.checked),
      }),
    ),
    columns.map((column) => cell(column, item, onOpen)),
  );
  return row;
}
