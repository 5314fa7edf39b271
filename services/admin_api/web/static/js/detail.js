// @ts-check
// The session detail dialog: every field of the session and its lifecycle history.
import { dialogButton } from "./dialogs.js";
import { lookAlikeWarnings } from "./confusables.js";
import { el, isolated, replaceChildren } from "./dom.js";
import { typeLabel } from "./presentation.js";
import { reasonLabel } from "./terminate.js";
import { datedAhead, timeElement } from "./timefmt.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").HistoryEntry} HistoryEntry */
/** @typedef {import("./api.js").SessionDetail} SessionDetail */
/** @typedef {import("./api.js").SessionItem} SessionItem */
/** @typedef {import("./dialogs.js").Modal} Modal */
/** @typedef {import("./dom.js").Child} Child */

/** @type {Readonly<Record<string, string>>} */
const HISTORY_LABELS = {
  "session.created": "Created",
  "session.activity": "Activity",
  "session.terminated": "Terminated",
  "session.expired": "Expired",
};

/** @param {number | undefined} value */
function seconds(value) {
  if (!value) return "—";
  /** @type {[number, string][]} */
  const units = [
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [size, name] of units) {
    if (value % size === 0) {
      const n = value / size;
      return `${n} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  return `${value} seconds`;
}

/**
 * @param {SessionDetail} session
 * @param {string | null} asOf when the list it was opened from was read (the server's `as_of`)
 */
function fields(session, asOf) {
  /** @type {Partial<SessionDetail["policy"]>} */
  const policy = session.policy || {};
  /** @type {[string, Child][]} */
  const rows = [
    ["Name", el("span", { class: "wrap-anywhere" }, session.user_name)],
    ["User ID", session.user_id],
    ...lookAlikeWarnings([
      ["The name", session.user_name],
      ["The user ID", session.user_id],
    ]).map(([kind, sentence]) => /** @type {[string, Child]} */ ([kind, el("span", { class: "warning" }, sentence)])),
    ["Session Type", typeLabel(session.session_type)],
    ["Session ID", session.session_id],
    ["IP Address", session.ip_address],
    ["Device", session.device || "—"],
    ["User agent", session.user_agent || "—"],
    ["Created", timeElement(session.created_at)],
    ...(datedAhead(session.created_at, asOf)
      ? [
          /** @type {[string, Child]} */ ([
            "Dated ahead",
            el(
              "span",
              { class: "warning" },
              "Its creation is dated after the list was read: Terminate all matching leaves it out until that time. Terminate it here.",
            ),
          ]),
        ]
      : []),
    ["Last Activity", timeElement(session.last_activity_at)],
    ["Expires", timeElement(session.expires_at)],
    ["Max session length", seconds(policy.max_session_seconds)],
    ["Idle timeout", seconds(policy.idle_timeout_seconds)],
  ];
  if (session.policy_outdated) rows.push(["Settings", "Outdated: created under session settings that are no longer current"]);
  return el("dl", { class: "detail-list" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")]));
}

/** @param {HistoryEntry} entry */
function describeEvent(entry) {
  const detail = entry.detail || {};
  const parts = [];
  if (detail.reason) parts.push(`reason: ${reasonLabel(String(detail.reason))}`);
  if (detail.terminated_by) parts.push(`by ${isolated(String(detail.terminated_by))}`);
  if (detail.ip_address) parts.push(`from ${detail.ip_address}`);
  return parts.join(", ");
}

/** @param {HistoryEntry[] | undefined} entries */
function history(entries) {
  if (!entries || entries.length === 0) return el("p", { class: "muted" }, "No lifecycle events recorded.");
  return el(
    "ol",
    { class: "history", "aria-label": "Lifecycle history" },
    entries.map((entry) =>
      el(
        "li",
        {},
        el("span", { class: "history-type" }, (Object.hasOwn(HISTORY_LABELS, entry.type) && HISTORY_LABELS[entry.type]) || entry.type),
        " ",
        timeElement(entry.occurred_at),
        describeEvent(entry) ? el("span", { class: "history-detail" }, ` — ${describeEvent(entry)}`) : null,
      ),
    ),
  );
}

/**
 * Open the detail dialog of a session, loading it and its history from the API; with
 * `onTerminate`, an active session gets a Terminate button (the same confirmation follows).
 * @param {Modal} modal
 * @param {Api} api
 * @param {{session_id: string, user_name?: string}} item
 * @param {(error: unknown) => string} describeError
 * @param {((session: SessionItem) => void) | null} onTerminate
 * @param {string | null} [asOf] when the list it was opened from was read: a session created
 *   after it is said to be dated ahead
 */
export async function openDetail(modal, api, item, describeError, onTerminate, asOf = null) {
  const content = el("div", { class: "detail", "aria-busy": "true" }, el("p", { class: "muted" }, "Loading session…"));
  const terminate = dialogButton("Terminate…", () => undefined, "button-danger");
  terminate.hidden = true;
  modal.open({
    title: item.user_name ? `Session of ${isolated(item.user_name)}` : "Session",
    body: [content],
    actions: [terminate, dialogButton("Close", () => modal.close())],
    wide: true,
  });
  try {
    const session = await api.getSession(item.session_id);
    replaceChildren(content, fields(session, asOf), el("h3", {}, "Lifecycle history"), history(session.history));
    if (onTerminate && session.active) {
      terminate.hidden = false;
      terminate.addEventListener("click", () => onTerminate(session));
    }
  } catch (error) {
    replaceChildren(content, el("p", { class: "inline-error", role: "alert" }, describeError(error)));
  } finally {
    content.removeAttribute("aria-busy");
  }
}
