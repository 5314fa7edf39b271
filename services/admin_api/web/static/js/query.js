// What the admin is looking at: search, per-column filters, outdated-only, sort.
import { COLUMNS, typeLabel } from "./columns.js";
import { shortTime } from "./timefmt.js";

export const DEFAULT_SORT = "-last_activity_at";
const TEXT_FILTERS = ["user_name", "session_id", "device"];
const RANGES = ["created", "last_activity", "expires"];

export class Query {
  constructor() {
    this.q = "";
    this.sort = DEFAULT_SORT;
    this.outdatedOnly = false;
    this.filters = {};
  }

  /** The filter of one column, or undefined. */
  filter(key) {
    return this.filters[key];
  }

  /** Set (or, with an empty value, remove) a column filter. */
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
  toggleSort(key) {
    this.sort = this.sort === key ? `-${key}` : key;
  }

  /** "ascending" | "descending" | "none" for a column (for aria-sort). */
  sortState(key) {
    if (this.sort === key) return "ascending";
    if (this.sort === `-${key}`) return "descending";
    return "none";
  }

  /** The filter object of the contract (list API parameters and terminate-by-filter body). */
  filterObject() {
    const out = {};
    if (this.q.trim()) out.q = this.q.trim();
    for (const key of TEXT_FILTERS) if (this.filters[key]) out[key] = this.filters[key];
    if (this.filters.session_type) out.session_type = [...this.filters.session_type];
    if (this.filters.ip_address) out.ip_address = this.filters.ip_address;
    for (const range of RANGES) {
      const value = this.filters[`${range}_at`];
      if (value && value.from) out[`${range}_from`] = value.from;
      if (value && value.to) out[`${range}_to`] = value.to;
    }
    if (this.outdatedOnly) out.policy_outdated = true;
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

  /** Whether anything narrows the list. */
  isNarrowed() {
    return Object.keys(this.filterObject()).length > 0;
  }

  /** The active column filters as removable chips: [{key, label}]. */
  chips() {
    const chips = [];
    for (const column of COLUMNS) {
      const value = this.filters[column.key];
      if (!value) continue;
      chips.push({ key: column.key, label: `${column.label}: ${describeFilter(column, value)}` });
    }
    if (this.outdatedOnly) chips.push({ key: "policy_outdated", label: "Outdated settings only" });
    return chips;
  }
}

function describeFilter(column, value) {
  switch (column.filter) {
    case "text":
      return `contains “${value}”`;
    case "type":
      return value.map(typeLabel).join(" or ");
    case "ip":
      return value.includes("/") ? `in ${value}` : value;
    case "range":
      if (value.from && value.to) return `${shortTime(value.from)} – ${shortTime(value.to)}`;
      if (value.from) return `from ${shortTime(value.from)}`;
      return `until ${shortTime(value.to)}`;
    default:
      return String(value);
  }
}
