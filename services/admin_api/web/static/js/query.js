// @ts-check
// What the admin is looking at: search, per-column filters, outdated-only, sort. The filter and
// sort names come from the server's vocabulary (vocabulary.js), never from this file.
import { isolated } from "./dom.js";
import { PAGE_FILTERS, humanize } from "./presentation.js";
import { shortTime } from "./timefmt.js";

/** @typedef {import("./vocabulary.js").Column} Column */
/** @typedef {import("./vocabulary.js").ColumnFilter} ColumnFilter */

/**
 * A time range in RFC 3339 UTC; either end may be open.
 * @typedef {{from: string | null, to: string | null}} TimeRange
 */

/**
 * A column filter's value: text (contains, or an address/network), chosen values, or a range.
 * @typedef {string | string[] | TimeRange} FilterValue
 */

/**
 * The contract's filter object: what the list takes as parameters and terminate-by-filter as body.
 * @typedef {Record<string, string | string[] | boolean>} FilterObject
 */

export class Query {
  /**
   * @param {object} vocabulary
   * @param {Column[]} vocabulary.columns every column of the list
   * @param {string} vocabulary.defaultSort the list's default order
   * @param {string | null} vocabulary.search the filter the search box sets (`q`), if served
   * @param {string | null} vocabulary.outdated the filter of the outdated-only toggle, if served
   */
  constructor({ columns, defaultSort, search, outdated }) {
    this.columns = columns;
    this.searchFilter = search;
    this.outdatedFilter = outdated;
    this.q = "";
    this.defaultSort = defaultSort;
    this.sort = defaultSort;
    this.outdatedOnly = false;
    /** @type {Record<string, FilterValue>} */
    this.filters = {};
  }

  /** The filter of one column, or undefined. */
  filter(/** @type {string} */ key) {
    return Object.hasOwn(this.filters, key) ? this.filters[key] : undefined;
  }

  /**
   * Set (or, with an empty value, remove) a column filter.
   * @param {string} key
   * @param {FilterValue | null | undefined} value
   */
  setFilter(key, value) {
    const empty =
      value === null ||
      value === undefined ||
      value === "" ||
      (Array.isArray(value) && value.length === 0) ||
      (typeof value === "object" && !Array.isArray(value) && !value.from && !value.to);
    if (empty) delete this.filters[key];
    else this.filters[key] = value;
  }

  /** Click on a column name: ascending first, then descending, then ascending again. */
  toggleSort(/** @type {string} */ key) {
    this.sort = this.sort === key ? `-${key}` : key;
  }

  /**
   * "ascending" | "descending" | "none" for a column (for aria-sort).
   * @param {string} key
   * @returns {"ascending" | "descending" | "none"}
   */
  sortState(key) {
    if (this.sort === key) return "ascending";
    if (this.sort === `-${key}`) return "descending";
    return "none";
  }

  /**
   * The filter object of the contract (list API parameters and terminate-by-filter body).
   * @returns {FilterObject}
   */
  filterObject() {
    /** @type {FilterObject} */
    const out = {};
    if (this.searchFilter && this.q.trim()) out[this.searchFilter] = this.q.trim();
    for (const column of this.columns) {
      const value = this.filter(column.key);
      if (column.filter === null || value === undefined) continue;
      const spec = column.filter;
      if (spec.control === "range") {
        if (typeof value !== "object" || Array.isArray(value)) continue;
        if (spec.from && value.from) out[spec.from] = value.from;
        if (spec.to && value.to) out[spec.to] = value.to;
      } else if (spec.control === "choice") {
        if (Array.isArray(value)) out[spec.name] = [...value];
      } else if (typeof value === "string") {
        out[spec.name] = value;
      }
    }
    if (this.outdatedFilter && this.outdatedOnly) out[this.outdatedFilter] = true;
    return out;
  }

  /** URL parameters of the list and export endpoints (sort included, paging not). */
  params() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(this.filterObject())) {
      if (Array.isArray(value)) for (const item of value) params.append(key, item);
      else params.set(key, String(value));
    }
    params.set("sort", this.sort);
    return params;
  }

  /**
   * Restore search, filters and sort from URL parameters (the page's own address): the same
   * names as the list API's, so a bookmarked view is the API request it makes. Unknown or
   * malformed values are ignored.
   * @param {URLSearchParams} params
   */
  restore(params) {
    if (this.searchFilter) this.q = params.get(this.searchFilter) ?? "";
    if (this.outdatedFilter) this.outdatedOnly = params.get(this.outdatedFilter) === "true";
    const sort = params.get("sort");
    const sortable = this.columns.filter((c) => c.sortable).map((c) => c.key);
    if (sort && sortable.includes(sort.replace(/^-/, ""))) this.sort = sort;
    for (const column of this.columns) {
      const spec = column.filter;
      if (spec === null) continue;
      if (spec.control === "range") {
        const valid = (/** @type {string | null} */ v) => (v && !Number.isNaN(Date.parse(v)) ? v : null);
        const from = spec.from ? valid(params.get(spec.from)) : null;
        const to = spec.to ? valid(params.get(spec.to)) : null;
        this.setFilter(column.key, from || to ? { from, to } : null);
      } else if (spec.control === "choice") {
        this.setFilter(column.key, params.getAll(spec.name).filter((v) => spec.choices.includes(v)));
      } else {
        this.setFilter(column.key, params.get(spec.name));
      }
    }
  }

  /** The view as URL parameters: the filter object, and the sort when it is not the default. */
  urlParams() {
    const params = this.params();
    if (params.get("sort") === this.defaultSort) params.delete("sort");
    return params;
  }

  /** Whether anything narrows the list. */
  isNarrowed() {
    return Object.keys(this.filterObject()).length > 0;
  }

  /**
   * The active column filters as removable chips.
   * @returns {{key: string, label: string}[]}
   */
  chips() {
    const chips = [];
    for (const column of this.columns) {
      const value = this.filter(column.key);
      if (!value || column.filter === null) continue;
      chips.push({ key: column.key, label: `${column.label}: ${describeFilter(column, column.filter, value)}` });
    }
    const outdated = this.outdatedFilter;
    if (outdated && this.outdatedOnly) {
      const label = Object.hasOwn(PAGE_FILTERS, outdated) ? PAGE_FILTERS[outdated]?.label : undefined;
      chips.push({ key: outdated, label: label ?? humanize(outdated) });
    }
    return chips;
  }
}

/**
 * A filter in words, for its chip and the terminate-all dialog.
 * @param {Column} column
 * @param {ColumnFilter} spec
 * @param {FilterValue} value
 */
function describeFilter(column, spec, value) {
  if (Array.isArray(value)) return value.map(column.choiceLabel).join(" or ");
  if (typeof value === "string") {
    if (spec.control === "exact") return `is “${isolated(value)}”`;
    if (spec.control !== "ip") return `contains “${isolated(value)}”`;
    return value.includes("/") ? `in ${value}` : value;
  }
  if (value.from && value.to) return `${shortTime(value.from)} – ${shortTime(value.to)}`;
  if (value.from) return `from ${shortTime(value.from)}`;
  return `until ${shortTime(value.to ?? "")}`;
}
