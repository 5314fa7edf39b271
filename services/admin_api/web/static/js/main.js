// @ts-check
// The Session Management page: wiring the toolbar, ribbon, dialogs and list together.
import { Api, ApiError, outcomeUnknown, requestKey } from "./api.js";
import { TokenSource, adoptToken, forgetToken, linkSignIn, peekClaims, takeTokenFromFragment } from "./auth.js";
import { AuditView } from "./audit-view.js";
import { ColumnChoice } from "./columns.js";
import { openColumnsDialog } from "./columns-dialog.js";
import { lookAlikeWarnings } from "./confusables.js";
import { loadConfig } from "./config.js";
import { openDetail } from "./detail.js";
import { Modal } from "./dialogs.js";
import { byId, byIdOf, downloadBlob, el, inputOf, isolable, isolated, plural, replaceChildren, show } from "./dom.js";
import { openFilterDialog } from "./filters.js";
import { SessionsList } from "./page.js";
import { describeError, signInMessage, stillUnknown, unknownTermination } from "./messages.js";
import { PAGE_FILTERS, unpresented } from "./presentation.js";
import { Query } from "./query.js";
import { SettingsView } from "./settings-view.js";
import { refreshRelativeTimes } from "./timefmt.js";
import { confirmMatching, confirmSelected, runTermination } from "./terminate.js";
import { listColumns, loadVocabulary } from "./vocabulary.js";

/** @typedef {import("./api.js").TerminationTarget} TerminationTarget */
/** @typedef {import("./api.js").SessionItem} SessionItem */
/** @typedef {import("./query.js").FilterObject} FilterObject */
/** @typedef {import("./auth.js").Claims} Claims */
/** @typedef {import("./config.js").PageConfig} PageConfig */
/** @typedef {import("./vocabulary.js").Column} Column */
/** @typedef {import("./vocabulary.js").Vocabulary} Vocabulary */
/** @typedef {import("./dom.js").Child} Child */

// First thing: take any token out of the address bar before anything can copy the URL.
// Whether it signs in depends on the page's mode (config.fragment_sign_in: development only).
const linkToken = takeTokenFromFragment();

const SEARCH_DEBOUNCE_MS = 300;
const VIEWS = ["sessions", "settings", "audit"];
const $ = byId;

/**
 * The served filter a toolbar control sets (presentation.js: `q` the search box,
 * `policy_outdated` the toggle), or null when the server has none for it.
 * @param {Vocabulary} vocabulary
 * @param {"search" | "toggle"} control
 */
function toolbarFilter(vocabulary, control) {
  const served = vocabulary.filters.find(
    (f) => f.column === null && Object.hasOwn(PAGE_FILTERS, f.name) && PAGE_FILTERS[f.name]?.control === control,
  );
  return served ? served.name : null;
}

class Page {
  /**
   * @param {PageConfig} config
   * @param {Vocabulary} vocabulary
   */
  constructor(config, vocabulary) {
    this.config = config;
    this.tokens = new TokenSource(config);
    this.api = new Api(this.tokens, (final) => this.unauthorized(final));
    /** @type {Map<string, HTMLElement>} a notice per termination whose outcome is not known, by its key */
    this.unknown = new Map();
    this.modal = new Modal(byIdOf("modal", HTMLDialogElement));
    const columns = listColumns(vocabulary);
    this.columns = new ColumnChoice(columns);
    this.query = new Query({
      columns,
      defaultSort: vocabulary.sort.default,
      search: toolbarFilter(vocabulary, "search"),
      outdated: toolbarFilter(vocabulary, "toggle"),
    });
    this.busy = false;
    this.announcedSelection = 0;
    this.liveSeconds = 5;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.liveTimer = undefined;
    this.list = new SessionsList({
      api: this.api,
      query: this.query,
      columns: this.columns,
      pageSize: config.page_size || 50,
      onRendered: () => this.renderChrome(),
      onError: (error) => this.showError(error),
      onOpen: (item) =>
        openDetail(this.modal, this.api, item, describeError, (one) => this.terminateSessions([one]), this.list.asOf),
      onFilter: (column) => this.openFilter(column),
      onCopy: (text, what) => this.copy(text, what),
      onUser: (userId) => this.showUser(userId),
      onDeleteKey: (item) => this.terminateFromKey(item),
      onPending: (changed) => this.renderPending(changed),
    });
    /** Signed out (a 401 no fresh token fixed): no rows, every action disabled. */
    this.signedOut = false;
    this.userColumn = columns.find((c) => c.key === "user_id" && c.filter !== null) ?? null;
    this.settings = new SettingsView({
      api: this.api,
      modal: this.modal,
      onError: (error) => this.showError(error),
      endOutdated: (type, label) =>
        this.terminateByFilter(
          { policy_outdated: true, session_type: [type] },
          { conditions: [`${label} sessions created under settings that are no longer current`], narrowed: true },
        ),
    });
    this.audit = new AuditView({
      api: this.api,
      onError: (error) => this.showError(error),
      onSession: (sessionId) => openDetail(this.modal, this.api, { session_id: sessionId }, describeError, null),
    });
    this.view = "sessions";
    this.wire();
  }

  wire() {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer = undefined;
    const search = byIdOf("search", HTMLInputElement);
    const searchLabel = search.closest("label");
    if (searchLabel) show(searchLabel, this.query.searchFilter !== null);
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.query.q = search.value;
        this.reload();
      }, SEARCH_DEBOUNCE_MS);
    });
    // the cards of a narrow screen have no header to click: the same sort as a select
    const sortSelect = byIdOf("sort-select", HTMLSelectElement);
    for (const column of this.query.columns.filter((c) => c.sortable)) {
      sortSelect.append(
        el("option", { value: column.key }, `${column.label} ↑`),
        el("option", { value: `-${column.key}` }, `${column.label} ↓`),
      );
    }
    sortSelect.addEventListener("change", () => {
      this.query.sort = sortSelect.value;
      this.reload();
    });
    const outdated = byIdOf("outdated-only", HTMLInputElement);
    const outdatedLabel = outdated.closest("label");
    if (outdatedLabel) show(outdatedLabel, this.query.outdatedFilter !== null);
    outdated.addEventListener("change", () => {
      this.query.outdatedOnly = outdated.checked;
      this.reload();
    });
    $("columns-button").addEventListener("click", () =>
      openColumnsDialog(this.modal, this.columns, () => this.list.render()),
    );
    $("refresh").addEventListener("click", () => this.list.refresh());
    $("show-pending").addEventListener("click", () => {
      this.list.applyPending();
      this.renderPending(0);
      this.setStatus("The list now shows the latest changes.");
    });
    for (const link of document.querySelectorAll("a.view-link")) {
      link.addEventListener("click", (event) => {
        if (!(link instanceof HTMLElement) || !(event instanceof MouseEvent) || event.ctrlKey || event.metaKey) return;
        event.preventDefault();
        this.showView(link.dataset.view ?? "sessions", true);
      });
    }
    window.addEventListener("popstate", () => this.restoreFromUrl());
    // "updated N s ago" and relative times stay current without touching the rows' order
    setInterval(() => this.tick(), 1000);
    $("export-csv").addEventListener("click", () => this.exportCsv());
    $("terminate-selected").addEventListener("click", () => this.terminateSelected());
    $("clear-selection").addEventListener("click", () => this.list.clearSelection());
    $("terminate-matching").addEventListener("click", () => this.terminateMatching());
    const seconds = Number(this.config.live_interval_seconds) || 5;
    $("live-label").textContent = `Live (every ${seconds} s)`;
    this.liveSeconds = seconds;
    $("live-mode").addEventListener("change", (event) => {
      this.setLive(inputOf(event).checked, seconds);
      this.saveUrl();
    });
    // the controls a user may reach before the page's script has loaded its configuration
    // come disabled (index.html): a term typed or a box ticked then would be lost, replaced
    // by the address's state once the page starts, and a button clicked would do nothing
    for (const id of ["search", "sort-select", "outdated-only", "live-mode", "refresh", "columns-button", "export-csv"]) {
      const control = $(id);
      if (control instanceof HTMLInputElement || control instanceof HTMLSelectElement || control instanceof HTMLButtonElement) {
        control.disabled = false;
      }
    }
  }

  /** Search, filters, sort, live mode and the view from the address (and a reload keeps them). */
  restoreFromUrl() {
    const params = new URLSearchParams(location.search);
    this.query.restore(params);
    byIdOf("search", HTMLInputElement).value = this.query.q;
    byIdOf("outdated-only", HTMLInputElement).checked = this.query.outdatedOnly;
    const live = params.get("live") === "1";
    byIdOf("live-mode", HTMLInputElement).checked = live;
    this.setLive(live, this.liveSeconds);
    const view = params.get("view") ?? "sessions";
    this.showView(VIEWS.includes(view) ? view : "sessions", false);
  }

  /** Keep the view in the address: replaceState, so Back leaves the page rather than undoing filters. */
  saveUrl() {
    const params = this.view === "sessions" ? this.query.urlParams() : new URLSearchParams();
    if (this.view === "sessions" && byIdOf("live-mode", HTMLInputElement).checked) params.set("live", "1");
    if (this.view !== "sessions") params.set("view", this.view);
    const search = params.toString();
    history.replaceState(history.state, "", location.pathname + (search ? `?${search}` : "") + location.hash);
  }

  /**
   * @param {string} view
   * @param {boolean} push a new history entry (a click on the navigation)
   */
  showView(view, push) {
    this.view = view;
    for (const name of VIEWS) show($(`view-${name}`), name === view);
    for (const link of document.querySelectorAll("a.view-link")) {
      if (link instanceof HTMLElement) {
        if (link.dataset.view === view) link.setAttribute("aria-current", "page");
        else link.removeAttribute("aria-current");
      }
    }
    // a click on the navigation is a new history entry; the list keeps its search and filters
    if (push) history.pushState(null, "", location.pathname);
    this.saveUrl();
    if (this.signedOut) return;
    if (view === "settings") this.settings.load();
    else if (view === "audit") this.audit.load();
    else if (push) this.reload();
  }

  tick() {
    const at = this.list.loadedAt;
    const updated = $("updated");
    if (at === null) {
      updated.textContent = this.signedOut ? "" : "Not loaded yet";
    } else {
      const seconds = Math.max(0, Math.round((Date.now() - at) / 1000));
      const text = seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min`;
      updated.textContent = `Updated ${text} ago`;
      if (this.list.asOf) updated.title = `The list shows sessions as of ${new Date(this.list.asOf).toLocaleString()}`;
    }
    if (Date.now() % 15000 < 1000) refreshRelativeTimes(document);
  }

  /** @param {number} changed sessions a live poll found changed (0: none waiting) */
  renderPending(changed) {
    show($("pending"), changed > 0 && !this.signedOut);
    $("show-pending").textContent = `${plural(changed, "session")} changed — show`;
  }

  /**
   * @param {string} text
   * @param {string} what
   */
  async copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      this.setStatus(`${what} copied: ${text}`);
    } catch {
      this.setStatus(`Copying is blocked in this browser; the ${what} is ${text}`);
    }
  }

  /**
   * All sessions of one user: the exact user id filter, and "Sign out everywhere".
   * @param {string} userId
   */
  showUser(userId) {
    if (!this.userColumn) return;
    this.query.setFilter(this.userColumn.key, userId);
    this.reload();
  }

  renderUserView() {
    const column = this.userColumn;
    const value = column ? this.query.filter(column.key) : undefined;
    const box = $("user-view");
    if (!column || typeof value !== "string") {
      show(box, false);
      return;
    }
    const names = [...new Set(this.list.rows.map((r) => r.user_name))];
    replaceChildren(
      box,
      el(
        "div",
        { class: "user-view-text" },
        el("strong", {}, "All sessions of user "),
        el("span", { class: "mono clip-inline", title: value }, isolable(value)),
        names.length ? el("span", { class: "muted" }, ` (${names.map(isolated).join(", ")})`) : null,
      ),
      el(
        "button",
        {
          type: "button",
          id: "sign-out-everywhere",
          class: "button button-danger",
          disabled: this.busy || this.signedOut || this.list.total === 0,
          onclick: () =>
            this.terminateByFilter(
              { [column.filter && "name" in column.filter ? column.filter.name : column.key]: value },
              {
                conditions: [`User ID is “${isolated(value)}”`],
                warnings: lookAlikeWarnings([["The user ID", value]]).map(([, sentence]) => sentence),
                narrowed: true,
                title: `Sign out user ${isolated(value)} everywhere?`,
                confirmLabel: "Sign out everywhere",
              },
            ),
        },
        "Sign out everywhere",
      ),
      el(
        "button",
        {
          type: "button",
          class: "button",
          onclick: () => {
            this.query.setFilter(column.key, null);
            this.reload();
          },
        },
        "Show all users",
      ),
    );
    show(box, true);
  }

  reload() {
    $("query-error").hidden = true;
    this.renderPending(0);
    this.saveUrl();
    if (this.signedOut) return Promise.resolve();
    return this.list.reload();
  }

  /**
   * A `#token=` link: ignored in production; in development never a silent switch of admin.
   * @param {string | null} token
   */
  signInFromLink(token) {
    const result = linkSignIn(token, this.config);
    const banner = $("link-banner");
    const dismiss = (/** @type {string} */ label) =>
      el("button", { type: "button", class: "button", onclick: () => show(banner, false) }, label);
    if (result.outcome === "ignored") {
      replaceChildren(
        banner,
        el("strong", {}, "A sign-in link was ignored. "),
        "This page signs in only through your organization's sign-in, never from a link: whoever sent it could have put their own account in it. ",
        dismiss("Dismiss"),
      );
      show(banner, true);
    } else if (result.outcome === "confirm") {
      const tenant = (/** @type {Claims | null} */ claims) => short(claims && claims.tenant);
      const who = (/** @type {Claims | null} */ claims) =>
        claims ? `${short(claims.sub)} of tenant ${tenant(claims)}` : "an unreadable token";
      /** @type {Claims} */
      const offered = result.offered || {};
      const target =
        result.current && result.current.tenant === offered.tenant
          ? `user ${short(offered.sub)}`
          : `tenant ${tenant(offered)}`;
      replaceChildren(
        banner,
        el("strong", {}, "This sign-in link is for another account. "),
        `This tab is signed in as ${who(result.current)}; the link is for ${who(result.offered)}. Nothing was changed. `,
        el(
          "button",
          {
            type: "button",
            class: "button",
            onclick: () => {
              adoptToken(result.token);
              location.reload(); // nothing of the other tenant's view (selection, filters) is kept
            },
          },
          `Switch to ${target}`,
        ),
        " ",
        dismiss("Keep this tab's sign-in"),
      );
      show(banner, true);
    }
    return result.outcome;
  }

  /**
   * Live mode polls the list; a poll is skipped while a load runs or a dialog is open.
   * @param {boolean} on
   * @param {number} seconds
   */
  setLive(on, seconds) {
    clearInterval(this.liveTimer);
    this.liveTimer = undefined;
    if (!on) return;
    this.liveTimer = setInterval(() => {
      if (document.hidden || this.list.loading || this.modal.isOpen || this.busy || this.signedOut) return;
      if (this.view !== "sessions" || this.list.error) return;
      this.list.poll();
    }, seconds * 1000);
  }

  /** @param {Column} column */
  openFilter(column) {
    openFilterDialog(this.modal, column, this.query.filter(column.key), (value) => {
      this.query.setFilter(column.key, value);
      this.reload();
    });
  }

  /** Toolbar text, chips and the blue selection ribbon follow the list's state. */
  renderChrome() {
    $("columns-button").textContent = this.columns.summary();
    byIdOf("sort-select", HTMLSelectElement).value = this.query.sort;
    const chips = this.query.chips();
    replaceChildren(
      $("filter-chips"),
      chips.map((chip) =>
        el(
          "span",
          { class: "chip" },
          el("span", {}, chip.label),
          el("button", { type: "button", class: "chip-remove", "aria-label": `Remove filter ${chip.label}`, onclick: () => this.removeChip(chip.key) }, "×"),
        ),
      ),
    );
    show($("filter-chips"), chips.length > 0);
    // a list that loaded means the sign-in works again (e.g. a fresh token from token_url)
    if (this.list.error === null && this.list.total !== null) show($("auth-banner"), false);
    const count = this.list.selection.size;
    show($("selection-ribbon"), count > 0 && !this.signedOut);
    $("selection-count").textContent = `${plural(count, "session")} selected`;
    byIdOf("terminate-selected", HTMLButtonElement).disabled = this.busy || this.signedOut;
    if (count !== this.announcedSelection) {
      this.announcedSelection = count;
      if (count > 0) this.setStatus(`${plural(count, "session")} selected. Press Delete to terminate ${count === 1 ? "it" : "them"}.`);
    }
    const total = this.list.total;
    const matching = byIdOf("terminate-matching", HTMLButtonElement);
    matching.disabled = this.busy || this.signedOut || !total || this.list.error !== null || count > 0;
    matching.title = count > 0 ? "Clear the selection to terminate by filter; Terminate in the blue bar ends the selected sessions." : "";
    const shown = `${total?.toLocaleString()}${this.list.totalExact ? "" : "+"}`;
    matching.textContent = total ? `Terminate all matching (${shown})` : "Terminate all matching";
    for (const id of ["export-csv", "refresh", "live-mode", "search", "outdated-only", "columns-button"]) {
      const control = $(id);
      if (control instanceof HTMLButtonElement || control instanceof HTMLInputElement) control.disabled = this.signedOut;
    }
    this.renderUserView();
    this.tick();
  }

  /** @param {string} key a column, or the outdated-only toggle's filter */
  removeChip(key) {
    if (key === this.query.outdatedFilter) {
      this.query.outdatedOnly = false;
      byIdOf("outdated-only", HTMLInputElement).checked = false;
    } else {
      this.query.setFilter(key, null);
    }
    this.reload();
    $("search").focus();
  }

  /** @param {unknown} error */
  showError(error) {
    const banner = $("auth-banner");
    if (error instanceof ApiError && error.status === 401) {
      replaceChildren(banner, signInMessage(this.tokens));
      show(banner, true);
    } else if (error instanceof ApiError && error.status === 403) {
      replaceChildren(banner, el("strong", {}, "Access denied. "), describeError(error));
      show(banner, true);
    } else if (error instanceof ApiError && error.status === 422) {
      $("query-error").textContent = describeError(error);
      show($("query-error"), true);
    } else {
      this.setStatus(describeError(error), true);
    }
  }

  /** @param {boolean} final */
  unauthorized(final) {
    forgetToken();
    if (!final) return;
    // nothing of the tenant stays on screen, and nothing can be acted on, until signing in again
    this.signedOut = true;
    this.setLive(false, this.liveSeconds);
    this.modal.close();
    for (const key of [...this.unknown.keys()]) this.settleUnknown(key); // no Try again signed out
    this.list.clear();
    this.settings.clear();
    this.audit.clear();
    show($("who"), false);
    this.renderPending(0);
    this.showError(new ApiError(401, "unauthorized"));
  }

  /** Name the signed-in admin and tenant (from the token: only to show, the API verifies it). */
  async showWho() {
    const claims = peekClaims(await this.tokens.token());
    if (!claims || typeof claims.sub !== "string") return;
    const tenant = typeof claims.tenant === "string" ? claims.tenant : "unknown";
    replaceChildren($("who"), "Signed in as ", el("strong", {}, short(claims.sub)), " · tenant ", el("strong", {}, short(tenant)));
    show($("who"), !this.signedOut);
  }

  /**
   * @param {string | Child[]} text a sentence, or a sentence with its controls
   * @param {boolean} [isError]
   */
  setStatus(text, isError = false) {
    const status = $("status");
    if (typeof text === "string") status.textContent = text;
    else replaceChildren(status, ...text);
    status.classList.toggle("status-error", isError);
  }

  async exportCsv() {
    try {
      const blob = await this.api.exportCsv(this.query.params());
      const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "");
      downloadBlob(blob, `active-sessions-${stamp}.csv`);
      this.setStatus("The current view was exported as CSV.");
    } catch (error) {
      this.showError(error);
    }
  }

  terminateSelected() {
    this.terminateSessions([...this.list.selection.values()]);
  }

  /** @param {SessionItem[]} sessions */
  terminateSessions(sessions) {
    if (sessions.length === 0 || this.busy || this.signedOut) return;
    confirmSelected(this.modal, sessions, (reason) =>
      this.terminate({ session_ids: sessions.map((s) => s.session_id), reason }, sessions.length),
    );
  }

  /**
   * Delete in a row: terminate the selection (or, with nothing selected, that row's session).
   * @param {SessionItem} item
   */
  terminateFromKey(item) {
    if (this.list.selection.size > 0) this.terminateSelected();
    else this.terminateSessions([item]);
  }

  terminateMatching() {
    if (this.list.selection.size > 0) return;
    const conditions = this.query.chips().map((c) => c.label);
    if (this.query.q.trim()) conditions.unshift(`Search: “${isolated(this.query.q.trim())}”`);
    this.terminateByFilter(this.query.filterObject(), { conditions, narrowed: this.query.isNarrowed() });
  }

  /**
   * End every session matching `filter`: count them now, confirm that count (typed, when
   * nothing narrows the list), and send the count's moment as `confirmed_at`, so sessions
   * created after it are not ended.
   * @param {FilterObject} filter
   * @param {{conditions: string[], warnings?: string[], narrowed: boolean, title?: string, confirmLabel?: string}} how
   */
  async terminateByFilter(filter, how) {
    if (this.busy || this.signedOut) return;
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      if (Array.isArray(value)) for (const one of value) params.append(key, one);
      else params.set(key, String(value));
    }
    params.set("limit", "1");
    params.set("count", "exact"); // the count the admin confirms: every match, however many
    let counted;
    try {
      counted = await this.api.listSessions(params);
    } catch (error) {
      this.showError(error);
      return;
    }
    if (counted.total === 0) {
      this.setStatus("No active session matches, so there is nothing to terminate.");
      return;
    }
    confirmMatching(this.modal, { total: counted.total, ...how }, (reason) =>
      this.terminate({ filter, confirmed_at: counted.as_of, reason }, counted.total),
    );
  }

  /**
   * Say that a termination may have been applied (`outcomeUnknown`), in the banner's notice of
   * its `key` (one a termination: another's does not take its place), with "Try again", which
   * sends it again as the same request (`again`).
   * @param {string} key
   * @param {string} text
   * @param {() => void} again
   */
  noteUnknown(key, text, again) {
    const retry = () => {
      if (this.busy) {
        this.setStatus("Another request is in progress; try again once it has finished.", true);
        return;
      }
      again();
      $("status").focus(); // the button may go: focus where the outcome is told
    };
    const notice = el("p", {}, `${text} `, el("button", { type: "button", class: "button", onclick: retry }, "Try again"));
    const before = this.unknown.get(key);
    if (before) before.replaceWith(notice);
    else $("unknown-banner").append(notice);
    this.unknown.set(key, notice);
    show($("unknown-banner"), true);
  }

  /**
   * The termination of `key` was accepted: its notice goes.
   * @param {string} key
   */
  settleUnknown(key) {
    this.unknown.get(key)?.remove();
    this.unknown.delete(key);
    if (this.unknown.size === 0) show($("unknown-banner"), false);
  }

  /**
   * Ask for termination, wait until applied, then say how many ended and reload the list.
   * `key` names the request: "Try again" after an answer that was lost sends the same target
   * with the same key, which the API takes as the same command (applied once).
   * @param {TerminationTarget} target
   * @param {number} count
   * @param {string} [key]
   */
  async terminate(target, count, key = requestKey()) {
    if (this.busy || this.signedOut) return;
    this.busy = true;
    this.renderChrome();
    this.setStatus(`Terminating ${plural(count, "session")}…`);
    try {
      const result = await runTermination(this.api, target, key, (ended) =>
        this.setStatus(`Terminating ${plural(count, "session")}… ${ended} ended so far.`),
      );
      this.settleUnknown(key); // accepted: what became of it is told below
      if (result.applied) {
        if ("session_ids" in target) this.list.removeRows(target.session_ids);
        this.setStatus(endedMessage(result.terminated, count, "filter" in target));
      } else if (result.failed) {
        const before = result.terminated > 0 ? ` ${plural(result.terminated, "session")} ended before it stopped.` : "";
        this.setStatus(`The termination could not be applied (command ${result.commandId}); an operator can retry it from the dead-letter topic.${before}`, true);
      } else if (result.unread !== undefined) {
        const why = result.unread instanceof ApiError ? (result.unread.status === 0 ? "no answer" : `error ${result.unread.status}`) : "an error";
        this.setStatus(`The termination was accepted (command ${result.commandId}), but whether it is applied could not be read (${why}). Refresh in a moment to see the sessions left.`, true);
        if (result.unread instanceof ApiError && (result.unread.status === 401 || result.unread.status === 403)) this.showError(result.unread);
      } else {
        this.setStatus(`The termination was accepted (command ${result.commandId}) but is not applied yet; refresh in a moment.`);
      }
    } catch (error) {
      const again = () => this.terminate(target, count, key);
      if (outcomeUnknown(error)) {
        // Kafka may have the command: "nothing was terminated" would be more than is known.
        // In a banner of its own: the list's refresh, failing in the same outage, writes the
        // status line (found by a review, stop 66)
        this.setStatus(`Terminating ${plural(count, "session")}: the answer is not known.`, true);
        this.noteUnknown(key, unknownTermination(error, count), again);
      } else if (this.unknown.has(key)) {
        // a retry refused (the producer given up, the database down, a 401): what became of
        // the first request is still not known (found by a review, stop 66)
        this.setStatus(`The retry was not accepted: ${describeError(error)}`, true);
        this.noteUnknown(key, stillUnknown(error, count), again);
      } else {
        this.setStatus(`Nothing was terminated: ${describeError(error)}`, true);
      }
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) this.showError(error);
    } finally {
      this.busy = false;
      if (!this.signedOut) await this.list.refresh();
      if (this.view === "settings") this.settings.load();
    }
  }
}

/**
 * What a termination did, against the count the admin confirmed: fewer ended when some ended
 * on their own meanwhile or, for a filter, were created (so their records say) after the count.
 * @param {number} ended
 * @param {number} confirmed
 * @param {boolean} byFilter
 */
function endedMessage(ended, confirmed, byFilter) {
  const done = `${plural(ended, "session")} ${ended === 1 ? "was" : "were"} ended`;
  if (ended >= confirmed) return `${done}.`;
  const others = byFilter
    ? "the others had ended meanwhile, or are dated after the count (marked “Dated ahead”: terminate those on their own)"
    : "the others had ended meanwhile";
  return `${done} of the ${confirmed} confirmed: ${others}.`;
}

/** Text from a token, for a sentence: never markup, never unbounded. */
function short(/** @type {unknown} */ value) {
  const text = typeof value === "string" && value ? value : "unknown";
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/**
 * The page cannot lay out its list without the vocabulary: say so, offer to try again.
 * @param {unknown} error
 */
function vocabularyMissing(error) {
  const reason = error instanceof Error ? error.message : String(error);
  const state = $("list-state");
  replaceChildren(
    state,
    el(
      "p",
      { class: "state-error" },
      `The list's columns could not be loaded (${reason}). `,
      el("button", { type: "button", class: "button", onclick: () => location.reload() }, "Try again"),
    ),
  );
  show(state, true);
}

/** Names the server serves that this page has no presentation for: shown anyway, and told. */
function reportUnpresented(/** @type {Vocabulary} */ vocabulary) {
  const missing = unpresented(vocabulary);
  if (missing.length === 0) return;
  document.documentElement.dataset.unpresented = missing.join("; ");
  console.warn(`admin page: no presentation for ${missing.join("; ")} (see presentation.js)`);
}

/** Load the config and the vocabulary, then the page; the list starts loading at once. */
async function start() {
  const configLoading = loadConfig();
  /** @type {Vocabulary} */
  let vocabulary;
  try {
    vocabulary = await loadVocabulary();
  } catch (error) {
    linkSignIn(linkToken, await configLoading); // a link still signs in where it may, for "Try again"
    vocabularyMissing(error);
    return;
  }
  reportUnpresented(vocabulary);
  const page = new Page(await configLoading, vocabulary);
  page.signInFromLink(linkToken);
  // a link followed while the page is open changes only the fragment: the same rules apply
  window.addEventListener("hashchange", () => {
    if (page.signInFromLink(takeTokenFromFragment()) === "adopted") location.reload();
  });
  page.restoreFromUrl();
  page.showWho();
  if (page.view === "sessions") page.reload();
}

start();
