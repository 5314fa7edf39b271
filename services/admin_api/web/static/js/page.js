// @ts-check
// The Active User Sessions list: loading pages, selection, refresh and live mode.
import { ApiError } from "./api.js";
import { byId, byIdOf, el, plural, replaceChildren, show } from "./dom.js";
import { describeFocus, restoreFocus } from "./focus.js";
import { renderHeader, renderRows } from "./table.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").SessionItem} SessionItem */
/** @typedef {import("./columns.js").ColumnChoice} ColumnChoice */
/** @typedef {import("./query.js").Query} Query */
/** @typedef {import("./vocabulary.js").Column} Column */

const MAX_LIMIT = 500;

/**
 * @typedef {object} ListOptions
 * @property {Api} api
 * @property {Query} query
 * @property {ColumnChoice} columns
 * @property {number} pageSize
 * @property {() => void} onRendered after each render (the toolbar and ribbon follow the list)
 * @property {(error: unknown) => void} onError
 * @property {(item: SessionItem) => void} onOpen
 * @property {(column: Column) => void} onFilter
 * @property {(text: string, what: string) => void} onCopy
 * @property {(userId: string) => void} onUser
 * @property {(item: SessionItem) => void} onDeleteKey Delete pressed in a row
 * @property {(changed: number) => void} onPending a live poll found this many changed sessions
 */

/**
 * One request for rows: how many, after which cursor, replacing or extending the loaded rows.
 * `stage`: a live poll: keep the answer aside (`pending`) instead of moving rows under the admin.
 * @typedef {{limit: number, cursor: string | null, replace: boolean, quiet: boolean, stage?: boolean}} PageRequest
 */

export class SessionsList {
  /** @param {ListOptions} options */
  constructor({ api, query, columns, pageSize, onRendered, onError, onOpen, onFilter, onCopy, onUser, onDeleteKey, onPending }) {
    this.api = api;
    this.query = query;
    this.columns = columns;
    this.pageSize = pageSize;
    this.onRendered = onRendered;
    this.onError = onError;
    this.onOpen = onOpen;
    this.onFilter = onFilter;
    this.onCopy = onCopy;
    this.onUser = onUser;
    this.onDeleteKey = onDeleteKey;
    this.onPending = onPending;
    /** @type {import("./api.js").SessionsPage | null} a live poll's answer, not shown yet */
    this.pending = null;
    this.pendingChanged = 0;
    /** @type {string | null} when the shown rows and total were read (the server's `as_of`) */
    this.asOf = null;
    /** @type {number | null} when the shown rows were loaded (this browser's clock, for "updated N s ago") */
    this.loadedAt = null;
    /** @type {SessionItem[]} */
    this.rows = [];
    /** @type {string | null} */
    this.nextCursor = null;
    /** @type {number | null} */
    this.total = null;
    /** @type {boolean} false: `total` is a lower bound (the server stopped counting) */
    this.totalExact = true;
    /** @type {Map<string, SessionItem>} */
    this.selection = new Map();
    this.loading = false;
    /** @type {unknown} the failure of the last load, null after a load that worked */
    this.error = null;
    this.sequence = 0;
    this.headerRow = byIdOf("header-row", HTMLTableRowElement);
    this.body = byIdOf("rows", HTMLTableSectionElement);
    this.table = byIdOf("sessions-table", HTMLTableElement);
    this.state = byId("list-state");
    this.summary = byId("table-summary");
    this.loadMoreButton = byIdOf("load-more", HTMLButtonElement);
    this.loadMoreButton.addEventListener("click", () => this.loadMore());
    this.body.addEventListener("keydown", (event) => {
      if (event.key !== "Delete" || !(event.target instanceof Element)) return;
      const row = event.target.closest("tr[data-session-id]");
      const item = row instanceof HTMLElement ? this.rows.find((r) => r.session_id === row.dataset.sessionId) : undefined;
      if (!item) return;
      event.preventDefault();
      this.onDeleteKey(item);
    });
    // A pointer pressed on the rows holds them as they are until it is released: a reply
    // rendered between the press and the release would move the row pressed (a new session
    // above it), and the release would land on another row: no click on either.
    this.pressing = false;
    /** whether a render left the rows as they were, to redraw when the press ends */
    this.rowsHeld = false;
    this.body.addEventListener("pointerdown", () => { this.pressing = true; });
    const released = () => {
      if (!this.pressing) return;
      this.pressing = false;
      // the click this release makes is dispatched in the same task as the release: after it
      if (this.rowsHeld) setTimeout(() => { if (!this.pressing && this.rowsHeld) this.render(); }, 0);
    };
    for (const type of ["pointerup", "pointercancel"]) window.addEventListener(type, released, true);
    window.addEventListener("blur", released);
    const sentinel = byId("scroll-sentinel");
    this.sentinel = sentinel;
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.loadMore();
    }, { rootMargin: "300px" }).observe(sentinel);
  }

  /** Load the list from its first page (a new search, filter or sort). */
  async reload() {
    this.dropPending();
    this.rows = [];
    this.nextCursor = null;
    this.total = null;
    this.render();
    await this.fetchPage({ limit: this.pageSize, cursor: null, replace: true, quiet: false });
  }

  /**
   * Reload what is loaded, keeping filters, sort and the selection of rows that still exist.
   * @param {{quiet?: boolean}} [options] quiet: no loading state (live mode)
   */
  async refresh({ quiet = false } = {}) {
    this.dropPending();
    const limit = Math.min(MAX_LIMIT, Math.max(this.pageSize, this.rows.length));
    await this.fetchPage({ limit, cursor: null, replace: true, quiet });
  }

  /**
   * Live mode: read the list again but move nothing; the changes wait in `pending` until the
   * admin asks for them (`applyPending`), so no row moves under the pointer or the selection.
   */
  async poll() {
    const limit = Math.min(MAX_LIMIT, Math.max(this.pageSize, this.rows.length));
    await this.fetchPage({ limit, cursor: null, replace: true, quiet: true, stage: true });
  }

  /** Show what the last live poll found. */
  applyPending() {
    const page = this.pending;
    if (page === null) return;
    this.dropPending();
    this.accept(page, true);
    this.render();
  }

  dropPending() {
    this.pending = null;
    this.pendingChanged = 0;
  }

  /** Forget every row (the sign-in is gone: nothing of the tenant stays on screen). */
  clear() {
    this.sequence++;
    this.dropPending();
    this.rows = [];
    this.selection.clear();
    this.nextCursor = null;
    this.total = null;
    this.asOf = null;
    this.loadedAt = null;
    this.loading = false;
    this.render();
  }

  /**
   * How many sessions differ between the shown rows and a fresh page: new, gone, changed or
   * moved; at least the change of the total when the loaded rows are the same.
   * @param {import("./api.js").SessionsPage} page
   */
  changesIn(page) {
    const before = new Map(this.rows.map((r, i) => [r.session_id, { i, json: JSON.stringify(r) }]));
    const changed = new Set();
    page.items.forEach((r, i) => {
      const old = before.get(r.session_id);
      if (!old || old.i !== i || old.json !== JSON.stringify(r)) changed.add(r.session_id);
    });
    const now = new Set(page.items.map((r) => r.session_id));
    for (const id of before.keys()) if (!now.has(id)) changed.add(id);
    return Math.max(changed.size, Math.abs((this.total ?? 0) - page.total));
  }

  /**
   * Take a page's rows (replacing or extending the shown ones).
   * @param {import("./api.js").SessionsPage} page
   * @param {boolean} replace
   */
  accept(page, replace) {
    this.error = null;
    if (replace) {
      this.rows = page.items;
    } else {
      const seen = new Set(this.rows.map((r) => r.session_id));
      this.rows = this.rows.concat(page.items.filter((r) => !seen.has(r.session_id)));
    }
    this.nextCursor = page.next_cursor;
    this.total = page.total;
    this.totalExact = page.total_exact !== false;
    if (replace) {
      this.asOf = page.as_of ?? null;
      this.loadedAt = Date.now();
      this.pruneSelection();
    }
  }

  /** The next page by keyset cursor (infinite scroll and the Load more button). */
  async loadMore() {
    if (!this.nextCursor || this.loading || this.error) return;
    await this.fetchPage({ limit: this.pageSize, cursor: this.nextCursor, replace: false, quiet: false });
  }

  /** @param {PageRequest} request */
  async fetchPage({ limit, cursor, replace, quiet, stage = false }) {
    const sequence = ++this.sequence;
    this.loading = true;
    if (!quiet) this.renderState();
    const params = this.query.params();
    params.set("limit", String(limit));
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await this.api.listSessions(params);
      if (sequence !== this.sequence) return;
      if (stage) {
        const changed = this.changesIn(page);
        if (changed === 0) {
          // nothing moved: the shown list is current as of now
          this.dropPending();
          this.asOf = page.as_of ?? this.asOf;
          this.loadedAt = Date.now();
          this.nextCursor = page.next_cursor;
        } else {
          this.pending = page;
          this.pendingChanged = changed;
        }
        this.loading = false;
        this.onPending(this.pendingChanged);
        return;
      }
      this.accept(page, replace);
    } catch (error) {
      if (sequence !== this.sequence) return;
      this.error = error;
      this.onError(error);
    } finally {
      if (sequence === this.sequence) {
        this.loading = false;
        // a live poll that worked re-renders nothing: no element is replaced under the pointer
        if (!stage || this.error) this.render();
      }
    }
    if (sequence === this.sequence && !this.error && !stage) this.fillViewport();
  }

  /** Keep loading while the end of the list is on screen (the observer fires only on change). */
  fillViewport() {
    if (!this.nextCursor) return;
    const rect = this.sentinel.getBoundingClientRect();
    if (rect.top < window.innerHeight + 300) setTimeout(() => this.loadMore(), 0);
  }

  pruneSelection() {
    const present = new Map(this.rows.map((r) => [r.session_id, r]));
    for (const id of [...this.selection.keys()]) {
      const row = present.get(id);
      if (row) this.selection.set(id, row);
      else this.selection.delete(id);
    }
  }

  /**
   * Drop rows that are gone (terminated) without waiting for the next load.
   * @param {string[]} ids
   */
  removeRows(ids) {
    const gone = new Set(ids);
    const before = this.rows.length;
    this.rows = this.rows.filter((r) => !gone.has(r.session_id));
    for (const id of gone) this.selection.delete(id);
    if (this.total !== null) this.total = Math.max(0, this.total - (before - this.rows.length));
    this.render();
  }

  /**
   * @param {SessionItem} item
   * @param {boolean} selected
   */
  toggle(item, selected) {
    if (selected) this.selection.set(item.session_id, item);
    else this.selection.delete(item.session_id);
    const row = this.body.querySelector(`tr[data-session-id="${CSS.escape(item.session_id)}"]`);
    if (row) row.classList.toggle("selected", selected);
    this.updateSelectAll();
    this.onRendered();
  }

  /** @param {boolean} selected */
  selectAll(selected) {
    for (const item of this.rows) {
      if (selected) this.selection.set(item.session_id, item);
      else this.selection.delete(item.session_id);
    }
    for (const box of this.body.querySelectorAll("input.row-select")) {
      if (box instanceof HTMLInputElement) box.checked = selected;
    }
    for (const row of this.body.rows) row.classList.toggle("selected", selected);
    this.updateSelectAll();
    this.onRendered();
  }

  clearSelection() {
    this.selectAll(false);
    this.selection.clear();
    this.onRendered();
  }

  /** @returns {"all" | "some" | "none"} */
  selectAllState() {
    const chosen = this.rows.filter((r) => this.selection.has(r.session_id)).length;
    if (chosen === 0) return "none";
    return chosen === this.rows.length ? "all" : "some";
  }

  updateSelectAll() {
    const box = document.getElementById("select-all");
    if (!(box instanceof HTMLInputElement)) return;
    const state = this.selectAllState();
    box.checked = state === "all";
    box.indeterminate = state === "some";
  }

  /** Render header, rows, state and footer; keeps keyboard focus on the same row control.
   * While a pointer is pressed on the rows they are left as they are, and drawn when it is
   * released (`pressing`). */
  render() {
    const focused = describeFocus(this.table);
    const columns = this.columns.visibleColumns();
    renderHeader(this.headerRow, {
      columns,
      query: this.query,
      selectAll: this.selectAllState(),
      onSelectAll: (checked) => this.selectAll(checked),
      onSort: (key) => this.onSortClick(key),
      onFilter: (column) => this.onFilter(column),
    });
    this.rowsHeld = this.pressing;
    if (!this.rowsHeld) {
      renderRows(this.body, this.rows, (item) => ({
        columns,
        selected: this.selection.has(item.session_id),
        onToggle: (row, checked) => this.toggle(row, checked),
        onOpen: (row) => this.onOpen(row),
        onCopy: this.onCopy,
        onUser: this.onUser,
        asOf: this.asOf,
      }));
    }
    restoreFocus(focused, this.body, this.headerRow);
    this.renderState();
    this.onRendered();
  }

  /** @param {string} key */
  onSortClick(key) {
    this.query.toggleSort(key);
    this.reload();
  }

  renderState() {
    const busy = this.loading;
    this.table.setAttribute("aria-busy", busy ? "true" : "false");
    let message = null;
    if (busy && this.rows.length === 0) {
      message = el("p", { class: "state-loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Loading sessions…");
    } else if (busy) {
      message = el("p", { class: "state-loading state-inline" }, "Loading more sessions…");
    } else if (this.error instanceof ApiError && this.error.status === 422) {
      // retrying the same refused filter can only fail again: say what to change instead
      message = el("p", { class: "state-error" }, "No sessions are shown: change or remove the filter named above.");
    } else if (this.error instanceof ApiError && this.error.status === 401) {
      message = el("p", { class: "state-error" }, "Sign in again to see sessions.");
    } else if (this.error) {
      message = el("p", { class: "state-error" }, "Sessions could not be loaded. ", el("button", { type: "button", class: "button", onclick: () => this.reload() }, "Try again"));
    } else if (this.rows.length === 0 && this.total !== null) {
      message = this.query.isNarrowed()
        ? el("p", { class: "state-empty" }, "No active sessions match the current search and filters.")
        : el("p", { class: "state-empty" }, "There are no active browser or mobile sessions.");
    }
    replaceChildren(this.state, message);
    show(this.state, message !== null);
    const of = `${this.totalExact ? "" : "at least "}${plural(this.total ?? 0, "session")}`;
    this.summary.textContent = this.total === null ? "" : `Showing ${this.rows.length.toLocaleString()} of ${of}`;
    show(this.loadMoreButton, Boolean(this.nextCursor) && !this.error);
    this.loadMoreButton.disabled = busy;
  }
}
