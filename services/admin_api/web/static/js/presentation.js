// @ts-check
// How the page presents the list's vocabulary: labels, cell formats and filter controls, keyed
// by the names the server serves (/admin/vocabulary.json, derived from the Python definitions).
// Nothing here says which columns, sort keys, session types or filters exist; a name the server
// serves and this file does not know is still shown, with a label made from the name
// (`humanize`), and `unpresented` lists it (a test fails on it).
// No imports and no DOM: the tests also load this module in Node.

/** @typedef {import("./vocabulary.js").Vocabulary} Vocabulary */

/** @typedef {"name" | "choice" | "time" | "mono" | "text" | "user"} CellFormat */

/**
 * @typedef {object} ColumnPresentation
 * @property {string} label the column header (and the filter dialog's and chip's wording)
 * @property {boolean} [required] always shown (the Columns dialog cannot hide it)
 * @property {CellFormat} [cell] how a value is rendered (default: by the value's kind)
 * @property {"ip" | "exact"} [control] a text filter that takes an address or CIDR network, or an exact value
 * @property {Readonly<Record<string, string>>} [choices] labels of a choice column's values
 */

/** The display labels of the session types. */
export const SESSION_TYPE_LABELS = Object.freeze({
  browser: "Browser",
  mobile: "Mobile",
});

/**
 * The columns the page knows, in the order it shows them (columns it does not know follow, in
 * the server's order).
 * @type {Readonly<Record<string, ColumnPresentation>>}
 */
export const COLUMN_PRESENTATION = Object.freeze({
  user_name: { label: "Name", required: true, cell: "name" },
  session_type: { label: "Session Type", required: true, cell: "choice", choices: SESSION_TYPE_LABELS },
  user_id: { label: "User ID", cell: "user", control: "exact" },
  session_id: { label: "Session ID", cell: "mono" },
  ip_address: { label: "IP Address", control: "ip" },
  created_at: { label: "Created" },
  last_activity_at: { label: "Last Activity" },
  expires_at: { label: "Expires" },
  device: { label: "Device" },
});

/**
 * Filters on no single column, and the toolbar control that sets each.
 * @type {Readonly<Record<string, {label: string, control: "search" | "toggle"}>>}
 */
export const PAGE_FILTERS = Object.freeze({
  q: { label: "Search", control: "search" },
  policy_outdated: { label: "Outdated settings only", control: "toggle" },
});

/**
 * Filters the page deliberately does not offer, and why.
 * @type {Readonly<Record<string, string>>}
 */
export const NOT_OFFERED = Object.freeze({});

/** "last_activity_at" → "Last Activity At": the label of a name the page has no wording for. */
export function humanize(/** @type {string} */ name) {
  return name
    .split(/[_\s]+/)
    .filter(Boolean)
    .map((word) => word[0].toUpperCase() + word.slice(1))
    .join(" ");
}

/** The display label of a session type. */
export function typeLabel(/** @type {unknown} */ value) {
  const text = String(value);
  return Object.hasOwn(SESSION_TYPE_LABELS, text)
    ? SESSION_TYPE_LABELS[/** @type {keyof typeof SESSION_TYPE_LABELS} */ (text)]
    : humanize(text);
}

/**
 * Names the server serves that the page has no presentation for; empty when it knows them all.
 * Each one still works (shown with `humanize`d labels) except a sort key without a column and a
 * filter without a control, which the page cannot offer.
 * @param {Vocabulary} vocabulary
 * @returns {string[]}
 */
export function unpresented(vocabulary) {
  const missing = [];
  const columns = new Set(vocabulary.columns.map((c) => c.key));
  for (const key of columns) if (!Object.hasOwn(COLUMN_PRESENTATION, key)) missing.push(`column ${key}`);
  for (const key of vocabulary.sort.keys) if (!columns.has(key)) missing.push(`sort key ${key} (no column)`);
  for (const type of vocabulary.session_types) {
    if (!Object.hasOwn(SESSION_TYPE_LABELS, type)) missing.push(`session type ${type}`);
  }
  for (const filter of vocabulary.filters) {
    if (filter.column === null) {
      if (!Object.hasOwn(PAGE_FILTERS, filter.name) && !Object.hasOwn(NOT_OFFERED, filter.name)) {
        missing.push(`filter ${filter.name}`);
      }
      continue;
    }
    const range = filter.kind === "date-time" && filter.bound !== null;
    const match = filter.name === filter.column && (filter.kind === "text" || filter.kind === "choice");
    if (!range && !match) missing.push(`filter ${filter.name} (no control for ${filter.kind} on ${filter.column})`);
  }
  return missing;
}

/**
 * Presentation of names the server no longer serves (dead entries to remove from this file).
 * @param {Vocabulary} vocabulary
 * @returns {string[]}
 */
export function stalePresentation(vocabulary) {
  const stale = [];
  const columns = new Set(vocabulary.columns.map((c) => c.key));
  const filters = new Set(vocabulary.filters.map((f) => f.name));
  const types = new Set(vocabulary.session_types);
  for (const key of Object.keys(COLUMN_PRESENTATION)) if (!columns.has(key)) stale.push(`column ${key}`);
  for (const name of [...Object.keys(PAGE_FILTERS), ...Object.keys(NOT_OFFERED)]) {
    if (!filters.has(name)) stale.push(`filter ${name}`);
  }
  for (const type of Object.keys(SESSION_TYPE_LABELS)) if (!types.has(type)) stale.push(`session type ${type}`);
  return stale;
}
