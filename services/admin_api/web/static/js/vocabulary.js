// @ts-check
// The list's vocabulary as the server derives it from the Python definitions
// (/admin/vocabulary.json: admin_api/web/vocabulary.py), joined with the page's presentation
// (presentation.js) into the columns the page renders. No DOM at import: Node loads it in tests.
import { COLUMN_PRESENTATION, humanize } from "./presentation.js";

/** @typedef {"text" | "date-time" | "choice" | "boolean" | "number" | "object"} ValueKind */

/**
 * A column: a field of every row of the list (`SessionPublic`).
 * @typedef {object} ColumnSpec
 * @property {string} key
 * @property {ValueKind} kind
 * @property {boolean} nullable
 * @property {boolean} sortable
 */

/**
 * A filter condition: a query parameter of the list and a key of the filter object.
 * @typedef {object} FilterSpec
 * @property {string} name
 * @property {ValueKind} kind
 * @property {string | null} column the column it narrows, null for `q`, `policy_outdated`, ...
 * @property {"from" | "to" | null} bound for a time range, which end
 * @property {string[] | null} choices for a choice, its values
 * @property {number | null} max_length for text, the longest value
 */

/**
 * @typedef {object} Vocabulary
 * @property {ColumnSpec[]} columns
 * @property {{keys: string[], default: string}} sort
 * @property {string[]} session_types
 * @property {FilterSpec[]} filters
 */

/** @typedef {import("./presentation.js").CellFormat} CellFormat */

/**
 * @typedef {{control: "text" | "ip" | "exact", name: string, maxLength: number | null}} TextFilter
 * @typedef {{control: "choice", name: string, choices: string[]}} ChoiceFilter
 * @typedef {{control: "range", from: string | null, to: string | null}} RangeFilter
 * @typedef {TextFilter | ChoiceFilter | RangeFilter} ColumnFilter
 */

/**
 * A column as the page renders it: the server's facts and the page's presentation.
 * @typedef {object} Column
 * @property {string} key
 * @property {string} label
 * @property {boolean} required
 * @property {CellFormat} cell
 * @property {boolean} sortable
 * @property {ColumnFilter | null} filter
 * @property {(value: string) => string} choiceLabel
 */

/** Fetch the vocabulary; throws when the server does not answer it. */
export async function loadVocabulary() {
  const response = await fetch(new URL("vocabulary.json", document.baseURI), { cache: "no-store" });
  if (!response.ok) throw new Error(`vocabulary.json answered ${response.status}`);
  return /** @type {Vocabulary} */ (await response.json());
}

/**
 * The filter control of a column: a time range (`*_from`/`*_to`), a choice of values, or text.
 * @param {ColumnSpec} column
 * @param {FilterSpec[]} filters
 * @param {"ip" | "exact" | undefined} control
 * @returns {ColumnFilter | null}
 */
function columnFilter(column, filters, control) {
  const own = filters.filter((f) => f.column === column.key);
  const bound = (/** @type {"from" | "to"} */ end) =>
    own.find((f) => f.kind === "date-time" && f.bound === end)?.name ?? null;
  const from = bound("from");
  const to = bound("to");
  if (from !== null || to !== null) return { control: "range", from, to };
  const match = own.find((f) => f.name === column.key);
  if (!match) return null;
  if (match.kind === "choice") return { control: "choice", name: match.name, choices: match.choices ?? [] };
  if (match.kind === "text") return { control: control ?? "text", name: match.name, maxLength: match.max_length };
  return null;
}

/**
 * The list's columns in display order: those the page presents first, in its order, then any
 * other the server serves, labelled from their names.
 * @param {Vocabulary} vocabulary
 * @returns {Column[]}
 */
export function listColumns(vocabulary) {
  const order = Object.keys(COLUMN_PRESENTATION);
  const rank = (/** @type {string} */ key) => (order.includes(key) ? order.indexOf(key) : order.length);
  const specs = [...vocabulary.columns].sort((a, b) => rank(a.key) - rank(b.key));
  return specs.map((spec) => {
    const shown = Object.hasOwn(COLUMN_PRESENTATION, spec.key) ? COLUMN_PRESENTATION[spec.key] : null;
    const labels = shown?.choices ?? {};
    return {
      key: spec.key,
      label: shown?.label ?? humanize(spec.key),
      required: shown?.required ?? false,
      cell: shown?.cell ?? (spec.kind === "date-time" ? "time" : spec.kind === "choice" ? "choice" : "text"),
      sortable: spec.sortable && vocabulary.sort.keys.includes(spec.key),
      filter: columnFilter(spec, vocabulary.filters, shown?.control),
      choiceLabel: (value) => (Object.hasOwn(labels, value) ? labels[value] : humanize(value)),
    };
  });
}
