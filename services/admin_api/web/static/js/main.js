// @ts-check
// The Session Management page: wiring the toolbar, ribbon, dialogs and list together.
import { Api, ApiError } from "./api.js";
import { TokenSource, adoptToken, forgetToken, linkSignIn, takeTokenFromFragment } from "./auth.js";
import { ColumnChoice } from "./columns.js";
import { openColumnsDialog } from "./columns-dialog.js";
import { loadConfig } from "./config.js";
import { openDetail } from "./detail.js";
import { Modal } from "./dialogs.js";
import { byId, byIdOf, downloadBlob, el, inputOf, plural, replaceChildren, show } from "./dom.js";
import { openFilterDialog } from "./filters.js";
import { SessionsList } from "./page.js";
import { describeError, signInMessage } from "./messages.js";
import { PAGE_FILTERS, unpresented } from "./presentation.js";
import { Query } from "./query.js";
import { confirmMatching, confirmSelected, runTermination } from "./terminate.js";
import { listColumns, loadVocabulary } from "./vocabulary.js";

/** @typedef {import("./api.js").TerminationTarget} TerminationTarget */
/** @typedef {import("./auth.js").Claims} Claims */
/** @typedef {import("./config.js").PageConfig} PageConfig */
/** @typedef {import("./vocabulary.js").Column} Column */
/** @typedef {import("./vocabulary.js").Vocabulary} Vocabulary */

// First thing: take any token out of the address bar before anything can copy the URL.
// Whether it signs in depends on the page's mode (config.fragment_sign_in: development only).
const linkToken = takeTokenFromFragment();

const SEARCH_DEBOUNCE_MS = 300;
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
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.liveTimer = undefined;
    this.list = new SessionsList({
      api: this.api,
      query: this.query,
      columns: this.columns,
      pageSize: config.page_size || 50,
      onRendered: () => this.renderChrome(),
      onError: (error) => this.showError(error),
      onOpen: (item) => openDetail(this.modal, this.api, item, describeError),
      onFilter: (column) => this.openFilter(column),
    });
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
    $("export-csv").addEventListener("click", () => this.exportCsv());
    $("terminate-selected").addEventListener("click", () => this.terminateSelected());
    $("clear-selection").addEventListener("click", () => this.list.clearSelection());
    $("terminate-matching").addEventListener("click", () => this.terminateMatching());
    const seconds = Number(this.config.live_interval_seconds) || 5;
    $("live-label").textContent = `Live (every ${seconds} s)`;
    $("live-mode").addEventListener("change", (event) => this.setLive(inputOf(event).checked, seconds));
  }

  reload() {
    $("query-error").hidden = true;
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
      if (document.hidden || this.list.loading || this.modal.isOpen || this.busy) return;
      this.list.refresh({ quiet: true });
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
    show($("selection-ribbon"), count > 0);
    $("selection-count").textContent = `${plural(count, "session")} selected`;
    byIdOf("terminate-selected", HTMLButtonElement).disabled = this.busy;
    const total = this.list.total;
    const matching = byIdOf("terminate-matching", HTMLButtonElement);
    matching.disabled = this.busy || !total || this.list.error !== null;
    matching.textContent = total ? `Terminate all matching (${total.toLocaleString()})` : "Terminate all matching";
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
    if (final) this.showError(new ApiError(401, "unauthorized"));
  }

  /**
   * @param {string} text
   * @param {boolean} [isError]
   */
  setStatus(text, isError = false) {
    const status = $("status");
    status.textContent = text;
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
    const sessions = [...this.list.selection.values()];
    if (sessions.length === 0) return;
    confirmSelected(this.modal, sessions, () =>
      this.terminate({ session_ids: sessions.map((s) => s.session_id) }, sessions.length),
    );
  }

  terminateMatching() {
    const total = this.list.total || 0;
    const conditions = this.query.chips().map((c) => c.label);
    if (this.query.q.trim()) conditions.unshift(`Search: “${this.query.q.trim()}”`);
    confirmMatching(this.modal, { total, conditions }, () => this.terminate({ filter: this.query.filterObject() }, total));
  }

  /**
   * Ask for termination, wait until applied, then say how many ended and reload the list.
   * @param {TerminationTarget} target
   * @param {number} count
   */
  async terminate(target, count) {
    this.busy = true;
    this.renderChrome();
    this.setStatus(`Terminating ${plural(count, "session")}…`);
    try {
      const result = await runTermination(this.api, target);
      if (result.applied) {
        if ("session_ids" in target) this.list.removeRows(target.session_ids);
        const n = result.terminated;
        this.setStatus(`${plural(n, "session")} ${n === 1 ? "was" : "were"} ended.`);
      } else {
        this.setStatus(`The termination was accepted (command ${result.commandId}) but is not applied yet; refresh in a moment.`);
      }
    } catch (error) {
      this.setStatus(`Nothing was terminated: ${describeError(error)}`, true);
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) this.showError(error);
    } finally {
      this.busy = false;
      await this.list.refresh();
    }
  }
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
  page.reload();
}

start();
