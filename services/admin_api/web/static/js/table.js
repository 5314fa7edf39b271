// @ts-check
// Rendering the sessions table: sortable, filterable headers and one row per session.
import { fieldOf } from "./api.js";
import { lookAlikeBadges } from "./confusables.js";
import { el, inputOf } from "./dom.js";
import { typeLabel } from "./presentation.js";
import { datedAhead, timeElement } from "./timefmt.js";

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
export function renderHeader(row, options) {
  keepUnchanged(row, headerCells(options));
  const box = row.querySelector("#select-all");
  if (box instanceof HTMLInputElement) {
    // its state is a property, which no markup compares: set here whether it was kept or not
    box.checked = options.selectAll === "all";
    box.indeterminate = options.selectAll === "some";
  }
}

/** What each header cell or row was drawn from: its column, or its item as JSON. */
const DRAWN_FROM = new WeakMap();

/**
 * Put `nodes` in `parent`, in order, keeping each node already there that was drawn from the
 * same column or an equal item (`DRAWN_FROM`) and would be drawn the same (`isEqualNode`: the
 * same attributes and children), and adding, moving or removing only the others; return what
 * `parent` holds then. A render replaced every node, so a click whose press and release
 * straddled it (a sort's reply rendering the header, a Refresh's or the next page's reply
 * rendering the rows) pressed an element that was gone and was lost. A kept node's listeners
 * act on the same column, or on an item equal to the new one.
 * @template {Element} T
 * @param {Element} parent
 * @param {T[]} nodes
 * @returns {T[]}
 */
function keepUnchanged(parent, nodes) {
  const shown = new Map(Array.from(parent.children, (node) => [DRAWN_FROM.get(node), node]));
  const wanted = nodes.map((node) => {
    const before = shown.get(DRAWN_FROM.get(node));
    return before && before.isEqualNode(node) ? /** @type {T} */ (before) : node;
  });
  wanted.forEach((node, i) => {
    const at = parent.children[i];
    if (at !== node) parent.insertBefore(node, at ?? null);
  });
  while (parent.children.length > wanted.length) parent.children[wanted.length].remove();
  return wanted;
}

/**
 * @param {HeaderOptions} options
 * @returns {HTMLTableCellElement[]}
 */
function headerCells({ columns, query, onSelectAll, onSort, onFilter }) {
  const box = el("input", {
    type: "checkbox",
    id: "select-all",
    "aria-label": "Select all loaded sessions",
    onchange: (event) => onSelectAll(inputOf(event).checked),
  });
  const cells = [el("th", { scope: "col", class: "select-col" }, box)];
  for (const column of columns) {
    const state = column.sortable ? query.sortState(column.key) : "none";
    const filtered = Boolean(query.filter(column.key));
    const label = el("span", { class: "column-label" }, column.label);
    const cell = el(
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
    );
    DRAWN_FROM.set(cell, column);
    cells.push(cell);
  }
  return cells;
}

/** How many characters of a session id the table shows (the whole id: hover, copy, detail). */
const SHORT_ID = 10;

/**
 * @typedef {object} CellActions
 * @property {(item: SessionItem) => void} onOpen
 * @property {(text: string, what: string) => void} onCopy
 * @property {(userId: string) => void} onUser
 * @property {string | null} asOf when the rows were read (the server's `as_of`): a session
 *   created after it is marked, since terminating all matching sessions leaves it out
 */

/**
 * One cell, formatted as the column's presentation says; `data-label` names it in the narrow
 * (card) layout. Long values are cut with an ellipsis, whole on hover and in the detail.
 * @param {Column} column
 * @param {SessionItem} item
 * @param {CellActions} actions
 * @returns {HTMLTableCellElement}
 */
function cell(column, item, { onOpen, onCopy, onUser, asOf }) {
  const value = fieldOf(item, column.key);
  const text = value == null || value === "" ? "" : String(value);
  const base = { dataset: { label: column.label, column: column.key } };
  switch (column.cell) {
    case "name":
      return el(
        "td",
        { ...base, class: "name-cell" },
        el("button", { type: "button", class: "link-button clip", title: text, onclick: () => onOpen(item) }, text),
        item.policy_outdated
          ? el(
              "span",
              { class: "badge badge-warn", title: "Created under session settings that are no longer current" },
              "Outdated settings",
            )
          : null,
        datedAhead(item.created_at, asOf)
          ? el(
              "span",
              {
                class: "badge badge-warn",
                title: "Its creation is dated after this list was read (the clock of the service that signed the user in is ahead): terminating all matching sessions leaves it out until that time; terminate it on its own",
              },
              "Dated ahead",
            )
          : null,
        lookAlikeBadges(`${item.user_name ?? ""} ${item.user_id ?? ""}`, "The name or user ID"),
      );
    case "choice":
      return el("td", base, value == null ? "—" : column.choiceLabel(text));
    case "time":
      return el("td", { ...base, class: "time-cell" }, timeElement(value));
    case "mono":
      return el(
        "td",
        { ...base, class: "id-cell" },
        el("span", { class: "mono", title: text }, text.length > SHORT_ID ? `${text.slice(0, SHORT_ID)}…` : text),
        el(
          "button",
          {
            type: "button",
            class: "copy-button",
            "aria-label": `Copy ${column.label} ${text}`,
            title: `Copy the whole ${column.label}`,
            onclick: () => onCopy(text, column.label),
          },
          copyIcon(),
        ),
      );
    case "user":
      return el(
        "td",
        base,
        text
          ? el(
              "button",
              {
                type: "button",
                class: "user-button clip mono",
                title: `${text}: show all sessions of this user`,
                "aria-label": `Show all sessions of user ${text}`,
                onclick: () => onUser(text),
              },
              text,
            )
          : "—",
      );
    case "text":
      return el("td", base, text ? el("span", { class: "clip", title: text }, text) : "—");
  }
}

function copyIcon() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", "M5 1h8a2 2 0 0 1 2 2v8h-2V3H5zM1 5a2 2 0 0 1 2-2h6a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2zm2 0v8h6V5z");
  svg.append(path);
  return svg;
}

/**
 * @typedef {object} RowOptions
 * @property {Column[]} columns the visible columns
 * @property {boolean} selected
 * @property {(item: SessionItem, checked: boolean) => void} onToggle
 * @property {(item: SessionItem) => void} onOpen
 * @property {(text: string, what: string) => void} onCopy
 * @property {(userId: string) => void} onUser
 * @property {string | null} asOf when the rows were read (see `CellActions`)
 */

/**
 * One row: a selection checkbox and the visible columns; clicking the row opens its details.
 * @param {SessionItem} item
 * @param {RowOptions} options
 */
function renderRow(item, { columns, selected, onToggle, onOpen, onCopy, onUser, asOf }) {
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
        "aria-keyshortcuts": "Delete",
        checked: selected,
        onchange: (event) => onToggle(item, inputOf(event).checked),
      }),
    ),
    columns.map((column) => cell(column, item, { onOpen, onCopy, onUser, asOf })),
  );
  return row;
}

/**
 * The rows, one per item (`keepUnchanged`: a row drawn the same from an equal item is kept).
 * @param {HTMLTableSectionElement} body
 * @param {SessionItem[]} items
 * @param {(item: SessionItem) => RowOptions} optionsOf
 */
export function renderRows(body, items, optionsOf) {
  const options = items.map(optionsOf);
  const rows = items.map((item, i) => {
    const row = renderRow(item, options[i]);
    DRAWN_FROM.set(row, JSON.stringify(item));
    return row;
  });
  keepUnchanged(body, rows).forEach((row, i) => {
    const box = row.querySelector("input.row-select");
    // its state is a property, which no markup compares: set here whether it was kept or not
    if (box instanceof HTMLInputElement) box.checked = options[i].selected;
  });
}
