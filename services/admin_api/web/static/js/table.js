// @ts-check
// Rendering the sessions table: sortable, filterable headers and one row per session.
import { fieldOf } from "./api.js";
import { el, inputOf, replaceChildren } from "./dom.js";
import { typeLabel } from "./presentation.js";
import { timeElement } from "./timefmt.js";

/** @typedef {import("./api.js").SessionItem} SessionItem */
/** @typedef {import("./query.js").Query} Query */
/** @typedef {import("./vocabulary.js").Column} Column */

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

/**
 * @typedef {object} HeaderOptions
 * @property {Column[]} columns the visible columns
 * @property {Query} query
 * @property {"all" | "some" | "none"} selectAll
 * @property {(checked: boolean) => void} onSelectAll
 * @property {(key: string) => void} onSort
 * @property {(column: Column) => void} onFilter
 */

/**
 * The header row: select-all, then each visible column with a sort button (when the list
 * sorts by it) and a filter button (when it has a filter).
 * @param {HTMLTableRowElement} row
 * @param {HeaderOptions} options
 */
export function renderHeader(row, { columns, query, selectAll, onSelectAll, onSort, onFilter }) {
  const box = el("input", {
    type: "checkbox",
    id: "select-all",
    "aria-label": "Select all loaded sessions",
    checked: selectAll === "all",
    onchange: (event) => onSelectAll(inputOf(event).checked),
  });
  box.indeterminate = selectAll === "some";
  const cells = [el("th", { scope: "col", class: "select-col" }, box)];
  for (const column of columns) {
    const state = column.sortable ? query.sortState(column.key) : "none";
    const filtered = Boolean(query.filter(column.key));
    const label = el("span", { class: "column-label" }, column.label);
    cells.push(
      el(
        "th",
        { scope: "col", "aria-sort": state === "none" ? null : state, dataset: { column: column.key } },
        el(
          "div",
          { class: "th" },
          column.sortable
            ? el(
                "button",
                { type: "button", class: "sort-button", onclick: () => onSort(column.key) },
                label,
                el("span", { class: `sort-mark sort-${state}`, "aria-hidden": "true" }, SORT_MARK[state]),
              )
            : label,
          column.filter === null
            ? null
            : el(
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

/**
 * One cell, formatted as the column's presentation says.
 * @param {Column} column
 * @param {SessionItem} item
 * @param {(item: SessionItem) => void} onOpen
 */
function cell(column, item, onOpen) {
  const value = fieldOf(item, column.key);
  switch (column.cell) {
    case "name":
      return el(
        "td",
        { class: "name-cell" },
        el("button", { type: "button", class: "link-button", onclick: () => onOpen(item) }, String(value)),
        item.policy_outdated
          ? el(
              "span",
              { class: "badge badge-warn", title: "Created under session settings that are no longer current" },
              "Outdated settings",
            )
          : null,
      );
    case "choice":
      return el("td", {}, value == null ? "—" : column.choiceLabel(String(value)));
    case "time":
      return el("td", { class: "time-cell" }, timeElement(value));
    case "mono":
      return el("td", { class: "mono" }, String(value));
    case "text":
      return el("td", {}, value == null || value === "" ? "—" : String(value));
  }
}

/**
 * @typedef {object} RowOptions
 * @property {Column[]} columns the visible columns
 * @property {boolean} selected
 * @property {(item: SessionItem, checked: boolean) => void} onToggle
 * @property {(item: SessionItem) => void} onOpen
 */

/**
 * One row: a selection checkbox and the visible columns; clicking the row opens its details.
 * @param {SessionItem} item
 * @param {RowOptions} options
 */
export function renderRow(item, { columns, selected, onToggle, onOpen }) {
  const label = `Select ${item.user_name}, ${typeLabel(item.session_type)} session ${item.session_id}`;
  const row = el(
    "tr",
    {
      class: selected ? "selected" : "",
      dataset: { sessionId: item.session_id },
      onclick: (event) => {
        if (event.target instanceof Element && event.target.closest("input, button, a, label")) return;
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
        onchange: (event) => onToggle(item, inputOf(event).checked),
      }),
    ),
    columns.map((column) => cell(column, item, onOpen)),
  );
  return row;
}
