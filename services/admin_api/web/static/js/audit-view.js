// @ts-check
// The Audit log page: every termination an admin requested (who, when, why, what, how many),
// filterable by admin and time, newest first, linking to the sessions it named.
import { lookAlikeBadges } from "./confusables.js";
import { el, isolable, plural, replaceChildren } from "./dom.js";
import { reasonLabel } from "./terminate.js";
import { fromLocalInput, timeElement } from "./timefmt.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").AuditEntry} AuditEntry */

const PAGE = 50;
const SHOWN_IDS = 5;
/** A request's status as the table says it (`failed`: the registry gave it up). */
const STATUS_LABELS = { pending: "Pending", applied: "Done", failed: "Failed" };

/**
 * @typedef {object} AuditOptions
 * @property {Api} api
 * @property {(error: unknown) => void} onError
 * @property {(sessionId: string) => void} onSession open a session's detail
 */

export class AuditView {
  /** @param {AuditOptions} options */
  constructor({ api, onError, onSession }) {
    this.api = api;
    this.onError = onError;
    this.onSession = onSession;
    const body = document.getElementById("audit-body");
    const form = document.getElementById("audit-filters");
    if (!(body instanceof HTMLElement) || !(form instanceof HTMLFormElement)) throw new Error("audit elements missing");
    this.body = body;
    this.form = form;
    /** @type {AuditEntry[]} */
    this.items = [];
    /** @type {string | null} */
    this.cursor = null;
    this.admin = el("input", { type: "text", id: "audit-admin", autocomplete: "off", spellcheck: "false", maxlength: 128 });
    this.since = el("input", { type: "datetime-local", id: "audit-since" });
    this.until = el("input", { type: "datetime-local", id: "audit-until" });
    this.problem = el("p", { class: "inline-error", role: "alert" });
    this.problem.hidden = true;
    replaceChildren(
      form,
      el(
        "div",
        { class: "toolbar-row" },
        el("div", { class: "field" }, el("label", { for: "audit-admin" }, "Admin (user id)"), this.admin),
        el("div", { class: "field" }, el("label", { for: "audit-since" }, "From (your local time)"), this.since),
        el("div", { class: "field" }, el("label", { for: "audit-until" }, "To"), this.until),
        el("button", { type: "submit", class: "button button-primary" }, "Apply"),
      ),
      this.problem,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
  }

  clear() {
    this.items = [];
    this.cursor = null;
    replaceChildren(this.body);
  }

  /** @param {boolean} [more] the next page */
  async load(more = false) {
    const since = fromLocalInput(this.since.value);
    const until = fromLocalInput(this.until.value);
    if (since && until && Date.parse(since) >= Date.parse(until)) {
      this.problem.textContent = "“From” must be earlier than “To”: this range contains no time at all.";
      this.problem.hidden = false;
      return;
    }
    this.problem.hidden = true;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (this.admin.value.trim()) params.set("requested_by", this.admin.value.trim());
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    if (more && this.cursor) params.set("cursor", this.cursor);
    if (!more) replaceChildren(this.body, el("p", { class: "muted" }, "Loading the audit log…"));
    try {
      const page = await this.api.getAudit(params);
      this.items = more ? this.items.concat(page.items) : page.items;
      this.cursor = page.next_cursor;
      this.render();
    } catch (error) {
      replaceChildren(this.body, el("p", { class: "inline-error" }, "The audit log could not be loaded."));
      this.onError(error);
    }
  }

  render() {
    if (this.items.length === 0) {
      replaceChildren(this.body, el("p", { class: "state-empty" }, "No terminations match."));
      return;
    }
    replaceChildren(
      this.body,
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { class: "sessions audit" },
          el("caption", { class: "visually-hidden" }, "Termination requests, newest first"),
          el(
            "thead",
            {},
            el("tr", {}, ["When", "Admin", "Reason", "What", "Asked", "Ended", "Status"].map((h) => el("th", { scope: "col" }, h))),
          ),
          el("tbody", {}, this.items.map((item) => this.row(item))),
        ),
      ),
      this.cursor ? el("button", { type: "button", class: "button", onclick: () => this.load(true) }, "Load more") : null,
    );
  }

  /** @param {AuditEntry} item */
  row(item) {
    const cell = (/** @type {string} */ label, /** @type {import("./dom.js").Child} */ content) => el("td", { dataset: { label } }, content);
    return el(
      "tr",
      { dataset: { commandId: item.command_id } },
      cell("When", timeElement(item.requested_at)),
      cell("Admin", [el("span", { class: "clip mono", title: item.requested_by }, item.requested_by), lookAlikeBadges(item.requested_by, "The admin user ID", { openHint: false })]),
      cell("Reason", reasonLabel(item.reason)),
      cell("What", this.target(item)),
      cell("Asked", item.requested.toLocaleString()),
      cell("Ended", item.status === "pending" ? "—" : item.terminated.toLocaleString()),
      cell("Status", STATUS_LABELS[item.status]),
    );
  }

  /** @param {AuditEntry} item */
  target(item) {
    const ids = item.target.session_ids;
    if (ids) {
      const shown = ids.slice(0, SHOWN_IDS);
      return el(
        "div",
        { class: "audit-target" },
        `${plural(ids.length, "session")}: `,
        shown.map((id, i) => [
          i ? ", " : "",
          el("button", { type: "button", class: "link-button mono", title: id, "aria-label": `Open session ${id}`, onclick: () => this.onSession(id) }, `${id.slice(0, 8)}…`),
        ]),
        ids.length > SHOWN_IDS ? ` and ${ids.length - SHOWN_IDS} more` : "",
      );
    }
    const conditions = Object.entries(item.target.filter ?? {});
    if (conditions.length === 0) return el("span", { class: "warning" }, "Every active session");
    return el(
      "span",
      {},
      "Sessions matching ",
      conditions.map(([key, value], i) => [i ? "; " : "", el("code", {}, isolable(`${key}=${Array.isArray(value) ? value.join(",") : String(value)}`))]),
    );
  }
}
