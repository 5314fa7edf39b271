// @ts-check
// Which of the list's columns (vocabulary.js: served by the server) the admin shows.
const STORAGE_KEY = "sessionControl.columns.v1";

/** @typedef {import("./vocabulary.js").Column} Column */

/** Which columns are shown; saved in localStorage so the choice survives reloads. */
export class ColumnChoice {
  /**
   * @param {Column[]} columns every column of the list, in display order
   * @param {Storage} storage
   */
  constructor(columns, storage = window.localStorage) {
    this.columns = columns;
    this.storage = storage;
    /** @type {Set<string>} */
    this.hidden = new Set();
    try {
      /** @type {unknown} */
      const saved = JSON.parse(storage.getItem(STORAGE_KEY) || "null");
      if (saved !== null && typeof saved === "object" && "hidden" in saved && Array.isArray(saved.hidden)) {
        for (const key of saved.hidden) {
          const column = this.column(key);
          if (column && !column.required) this.hidden.add(column.key);
        }
      }
    } catch {
      this.hidden.clear();
    }
  }

  /** The column named `key`, if the list has one. */
  column(/** @type {unknown} */ key) {
    return this.columns.find((c) => c.key === key);
  }

  isVisible(/** @type {string} */ key) {
    return !this.hidden.has(key);
  }

  /**
   * Show or hide an optional column; the required ones (Name, Session Type) always stay.
   * @param {string} key
   * @param {boolean} visible
   */
  set(key, visible) {
    const column = this.column(key);
    if (!column || column.required) return;
    if (visible) this.hidden.delete(key);
    else this.hidden.add(key);
    this.storage.setItem(STORAGE_KEY, JSON.stringify({ hidden: [...this.hidden] }));
  }

  visibleColumns() {
    return this.columns.filter((c) => this.isVisible(c.key));
  }

  /** "6 Columns Selected of 8". */
  summary() {
    return `${this.visibleColumns().length} Columns Selected of ${this.columns.length}`;
  }
}
