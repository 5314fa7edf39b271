// @ts-check
// The Session settings page: each session type's maximum length and idle timeout, edited with
// validation; how many active sessions run under older settings, and ending them.
import { ApiError, outcomeUnknown } from "./api.js";
import { lookAlikeBadges } from "./confusables.js";
import { el, isolated, plural, replaceChildren } from "./dom.js";
import { typeLabel } from "./presentation.js";
import { timeElement } from "./timefmt.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").SessionSetting} SessionSetting */
/** @typedef {import("./dialogs.js").Modal} Modal */

const MIN_SECONDS = 60;
const MAX_SECONDS = 10 * 366 * 86400;
/** @type {[string, number][]} */
const UNITS = [
  ["minutes", 60],
  ["hours", 3600],
  ["days", 86400],
];

/** @type {[string, number]} for a limit set (by the API) in seconds that are no whole minutes */
const SECONDS = ["seconds", 1];

/** The units a limit of `seconds` is edited in: seconds too when it is no whole minutes. */
function unitsFor(/** @type {number} */ seconds) {
  return seconds % 60 === 0 ? UNITS : [SECONDS, ...UNITS];
}

/** The largest unit that divides `seconds` exactly: [amount, unit]. */
function split(/** @type {number} */ seconds) {
  for (const [unit, size] of [...unitsFor(seconds)].reverse()) if (seconds % size === 0) return [seconds / size, unit];
  return [seconds, "seconds"];
}

/** "30 days", "8 hours". */
export function duration(/** @type {number} */ seconds) {
  const [amount, unit] = split(seconds);
  return `${amount} ${amount === 1 ? String(unit).replace(/s$/, "") : unit}`;
}

/**
 * @typedef {object} SettingsOptions
 * @property {Api} api
 * @property {Modal} modal
 * @property {(error: unknown) => void} onError
 * @property {(type: string, label: string) => void} endOutdated end the type's outdated sessions (confirmed)
 */

export class SettingsView {
  /** @param {SettingsOptions} options */
  constructor({ api, modal, onError, endOutdated }) {
    this.api = api;
    /** @type {string | null} the tag (`ETag`) of the settings shown: a change is made only on these */
    this.tag = null;
    /** @type {SessionSetting[]} the settings shown */
    this.items = [];
    this.modal = modal;
    this.onError = onError;
    this.endOutdated = endOutdated;
    const body = document.getElementById("settings-body");
    if (!(body instanceof HTMLElement)) throw new Error("settings-body missing");
    this.body = body;
  }

  clear() {
    replaceChildren(this.body);
  }

  async load() {
    replaceChildren(this.body, el("p", { class: "muted" }, "Loading session settings…"));
    try {
      const { items, tag } = await this.api.getSettings();
      this.items = items;
      this.tag = tag;
      const counts = await Promise.all(items.map((item) => this.counts(item.session_type)));
      replaceChildren(
        this.body,
        items.map((item, i) => this.card(item, counts[i] ?? { active: 0, outdated: 0 })),
      );
    } catch (error) {
      replaceChildren(this.body, el("p", { class: "inline-error" }, "The session settings could not be loaded."));
      this.onError(error);
    }
  }

  /**
   * After a change whose outcome is unknown, take the settings' tag as they are now only when
   * nothing but this change can have happened since the page read them: every other type
   * exactly as shown (values, when, by whom), and this type holding what was sent (stored after
   * all) or exactly what was shown (not stored). "Save again" then stores it once; anything
   * else keeps the old tag, and saving again is refused (412) and shown.
   * @param {SessionSetting} shown
   * @param {{max_session_seconds: number, idle_timeout_seconds: number}} sent
   */
  async retagAfterUnknown(shown, sent) {
    /** @param {{max_session_seconds: number, idle_timeout_seconds: number}} a @param {{max_session_seconds: number, idle_timeout_seconds: number}} b */
    const sameLimits = (a, b) => a.max_session_seconds === b.max_session_seconds && a.idle_timeout_seconds === b.idle_timeout_seconds;
    /** @param {SessionSetting} a @param {SessionSetting} b */
    const unchanged = (a, b) => sameLimits(a, b) && a.updated_at === b.updated_at && a.updated_by === b.updated_by;
    try {
      const { items, tag } = await this.api.getSettings();
      const before = new Map(this.items.map((i) => [i.session_type, i]));
      const still = items.every((now) => {
        const was = before.get(now.session_type);
        if (!was) return false;
        if (now.session_type !== shown.session_type) return unchanged(now, was);
        return sameLimits(now, sent) || unchanged(now, was);
      });
      if (still && items.length === before.size) {
        this.tag = tag;
        this.items = items; // what the tag names, for a second unknown answer
      }
    } catch {
      // unread: the old tag stays, and saving again says so if the settings changed
    }
  }

  /**
   * Active sessions of a type, and how many of them run under settings no longer current.
   * @param {string} type
   */
  async counts(type) {
    const base = new URLSearchParams({ session_type: type, limit: "1" });
    const outdated = new URLSearchParams(base);
    outdated.set("policy_outdated", "true");
    const [all, old] = await Promise.all([this.api.listSessions(base), this.api.listSessions(outdated)]);
    return { active: all.total, outdated: old.total };
  }

  /**
   * @param {SessionSetting} item
   * @param {{active: number, outdated: number}} counts
   */
  card(item, counts) {
    const label = typeLabel(item.session_type);
    const id = `settings-${item.session_type}`;
    const field = (/** @type {string} */ name, /** @type {string} */ text, /** @type {number} */ seconds) => {
      const [amount, unit] = split(seconds);
      const units = unitsFor(seconds);
      const number = el("input", { type: "number", id: `${id}-${name}`, min: "1", step: "1", value: String(amount), class: "number", required: true });
      const select = el(
        "select",
        { id: `${id}-${name}-unit`, class: "select", "aria-label": `${text} unit` },
        units.map(([u]) => el("option", { value: u, selected: u === unit }, u)),
      );
      return {
        node: el("div", { class: "field" }, el("label", { for: number.id }, text), el("div", { class: "inline" }, number, select)),
        read: () => {
          const size = units.find(([u]) => u === select.value)?.[1] ?? 60;
          const value = Number(number.value);
          return Number.isInteger(value) && value > 0 ? value * size : NaN;
        },
        focus: () => number.focus(),
      };
    };
    const max = field("max", "Maximum session length", item.max_session_seconds);
    const idle = field("idle", "Idle timeout", item.idle_timeout_seconds);
    const problem = el("p", { class: "inline-error", role: "alert", id: `${id}-problem` });
    problem.hidden = true;
    const note = el("p", { class: "hint", id: `${id}-note`, "aria-live": "polite" });
    const check = () => {
      const m = max.read();
      const i = idle.read();
      if (Number.isNaN(m)) return ["Enter the maximum session length as a whole number above zero.", max];
      if (Number.isNaN(i)) return ["Enter the idle timeout as a whole number above zero.", idle];
      if (m < MIN_SECONDS || i < MIN_SECONDS) return ["Limits must be at least 1 minute.", m < MIN_SECONDS ? max : idle];
      if (m > MAX_SECONDS || i > MAX_SECONDS) return ["Limits can be at most 10 years.", m > MAX_SECONDS ? max : idle];
      if (i > m) return ["The idle timeout cannot be longer than the maximum session length.", idle];
      return null;
    };
    const preview = () => {
      const found = check();
      if (found) {
        note.textContent = "";
        return;
      }
      const changed = max.read() !== item.max_session_seconds || idle.read() !== item.idle_timeout_seconds;
      note.textContent = changed
        ? `Saving applies to new ${label} sessions only. The ${plural(counts.active, `active ${label} session`)} keep their current limits and will show “Outdated settings” unless they started under exactly these limits; you can end them afterwards.`
        : "";
    };
    const form = el(
      "form",
      {
        class: "settings-form",
        "aria-labelledby": `${id}-title`,
        novalidate: true,
        oninput: preview,
        onsubmit: async (/** @type {Event} */ event) => {
          event.preventDefault();
          const found = check();
          if (found) {
            problem.textContent = String(found[0]);
            problem.hidden = false;
            const target = found[1];
            if (typeof target === "object" && target) target.focus();
            return;
          }
          problem.hidden = true;
          const sent = () => ({ max_session_seconds: max.read(), idle_timeout_seconds: idle.read() });
          try {
            await this.api.putSetting(item.session_type, sent(), this.tag);
            await this.load();
            const status = document.getElementById("status");
            if (status) status.textContent = `${label} settings saved; new ${label} sessions get them.`;
            document.getElementById(`${id}-outdated`)?.focus();
          } catch (error) {
            if (error instanceof ApiError && error.status === 412) {
              // another change was stored since this page read them: shown as they are now
              await this.load();
              const status = document.getElementById("status");
              if (status) {
                status.textContent = `The session settings changed since this page read them (another admin, or a save whose answer was lost), so ${label} settings were not saved. They are shown as they are now: make your change again if it still applies.`;
              }
              document.getElementById(`${id}-title`)?.focus();
              return;
            }
            if (outcomeUnknown(error)) await this.retagAfterUnknown(item, sent());
            problem.textContent = outcomeUnknown(error)
              ? "The settings may have been saved, but the page could not confirm it. Save again: the same settings are stored once."
              : "The settings were not saved. Check the values and try again.";
            problem.hidden = false;
            this.onError(error);
          }
        },
      },
      el("div", { class: "settings-fields" }, max.node, idle.node),
      problem,
      note,
      el("button", { type: "submit", class: "button button-primary" }, `Save ${label} settings`),
    );
    return el(
      "section",
      { class: "settings-card", "data-session-type": item.session_type },
      el("h3", { id: `${id}-title` }, `${label} sessions`),
      el(
        "p",
        { class: "muted" },
        `Now: at most ${duration(item.max_session_seconds)}, ending after ${duration(item.idle_timeout_seconds)} without activity. `,
        item.is_default || !item.updated_at
          ? "Product defaults."
          : [
              "Changed by ",
              el("strong", {}, isolated(item.updated_by ?? "unknown")),
              lookAlikeBadges(item.updated_by ?? "", "The admin user ID", { openHint: false }),
              " ",
              timeElement(item.updated_at),
              ".",
            ],
      ),
      form,
      el(
        "div",
        { class: "outdated-line" },
        el(
          "p",
          { id: `${id}-outdated`, tabindex: "-1" },
          counts.outdated
            ? `${plural(counts.outdated, `active ${label} session`)} of ${counts.active.toLocaleString()} ${counts.outdated === 1 ? "was" : "were"} created under older settings and ${counts.outdated === 1 ? "keeps its" : "keep their"} old limits.`
            : `All ${plural(counts.active, `active ${label} session`)} run under the current settings.`,
        ),
        counts.outdated
          ? el(
              "button",
              { type: "button", class: "button button-danger-outline", onclick: () => this.endOutdated(item.session_type, label) },
              `End ${plural(counts.outdated, "outdated session")}…`,
            )
          : null,
      ),
    );
  }
}
