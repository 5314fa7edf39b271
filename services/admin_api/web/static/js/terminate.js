// @ts-check
// Ending sessions: the confirmation dialogs, the request, and waiting until the registry applied it.
import { ApiError } from "./api.js";
import { lookAlikeBadges } from "./confusables.js";
import { dialogButton } from "./dialogs.js";
import { el, isolable, plural } from "./dom.js";
import { typeLabel } from "./presentation.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").SessionItem} SessionItem */
/** @typedef {import("./api.js").TerminationTarget} TerminationTarget */
/** @typedef {import("./api.js").AdminReason} AdminReason */
/** @typedef {import("./dialogs.js").Modal} Modal */
/** @typedef {import("./dom.js").Child} Child */

const UNDO_WARNING = "This cannot be undone: the users are signed out and must sign in again.";
const POLL_DEADLINE_MS = 60_000;

/** @param {SessionItem[]} sessions */
function sessionsTable(sessions) {
  return el(
    "div",
    { class: "confirm-scroll" },
    el(
      "table",
      { class: "confirm-table" },
      el("caption", { class: "visually-hidden" }, "Sessions to terminate"),
      el(
        "thead",
        {},
        el("tr", {}, el("th", { scope: "col" }, "Name"), el("th", { scope: "col" }, "Session Type"), el("th", { scope: "col" }, "Session ID")),
      ),
      el(
        "tbody",
        {},
        sessions.map((s) =>
          el(
            "tr",
            {},
            el("td", {}, el("span", { class: "wrap-anywhere" }, isolable(s.user_name)), lookAlikeBadges(`${s.user_name ?? ""} ${s.user_id ?? ""}`, "The name or user ID")),
            el("td", {}, typeLabel(s.session_type)),
            el("td", { class: "mono wrap-anywhere" }, s.session_id),
          ),
        ),
      ),
    ),
  );
}

/** The reasons an admin can give; the audit shows the one chosen. */
export const REASONS = /** @type {const} */ ([
  ["admin", "Administrative action (e.g. offboarding, policy change)"],
  ["security", "Security concern (e.g. suspected compromise)"],
]);

/** The reason's label for the audit table. */
export function reasonLabel(/** @type {string} */ reason) {
  if (reason === "logout") return "Signed out";
  const found = REASONS.find(([value]) => value === reason);
  return found ? found[1].replace(/ \(.*\)$/, "") : reason;
}

function reasonField() {
  const select = el(
    "select",
    { id: "terminate-reason", class: "select" },
    REASONS.map(([value, label]) => el("option", { value }, label)),
  );
  return {
    node: el("div", { class: "field" }, el("label", { for: "terminate-reason" }, "Reason (recorded in the audit log)"), select),
    read: () => /** @type {AdminReason} */ (select.value === "security" ? "security" : "admin"),
  };
}

/**
 * @param {Modal} modal
 * @param {{title: string, description: string, body: Child[], confirmLabel: string, onConfirm: (reason: AdminReason) => void, typeToConfirm?: number | null}} content
 */
function confirmDialog(modal, { title, description, body, confirmLabel, onConfirm, typeToConfirm = null }) {
  const reason = reasonField();
  const cancel = dialogButton("Cancel", () => modal.close());
  const confirm = dialogButton(
    confirmLabel,
    () => {
      if (confirm.disabled) return;
      modal.close();
      onConfirm(reason.read());
    },
    "button-danger",
  );
  /** @type {Child[]} */
  const extra = [reason.node];
  if (typeToConfirm !== null) {
    const expected = String(typeToConfirm);
    const typed = el("input", {
      type: "text",
      id: "type-count",
      inputmode: "numeric",
      autocomplete: "off",
      "aria-describedby": "type-count-hint",
      oninput: () => {
        confirm.disabled = typed.value.trim() !== expected;
      },
    });
    confirm.disabled = true;
    extra.push(
      el(
        "div",
        { class: "field" },
        el("label", { for: "type-count" }, `Type ${expected} to confirm`),
        typed,
        el("p", { id: "type-count-hint", class: "hint" }, "Nothing narrows this list, so every listed session would end: type the number of sessions to confirm."),
      ),
    );
  }
  // Cancel has focus first: Enter on an unread dialog must not end anyone's session.
  modal.open({ title, description, body: [...body, ...extra], actions: [confirm, cancel], initialFocus: cancel, wide: true });
}

/**
 * Confirm ending the selected sessions: lists name, type and id of each (never cut off).
 * @param {Modal} modal
 * @param {SessionItem[]} sessions
 * @param {(reason: AdminReason) => void} onConfirm
 */
export function confirmSelected(modal, sessions, onConfirm) {
  confirmDialog(modal, {
    title: `Terminate ${plural(sessions.length, "session")}?`,
    description: UNDO_WARNING,
    body: [sessionsTable(sessions)],
    confirmLabel: "Terminate",
    onConfirm,
  });
}

/**
 * Confirm ending every session matching a filter, with the count read at `asOf`: sessions
 * created after it are not ended (the count is binding). Without a narrowing condition the
 * admin types the count. `warnings` say what the conditions' values may hide (`lookAlikeWarnings`).
 * @param {Modal} modal
 * @param {{total: number, conditions: string[], warnings?: string[], narrowed: boolean, title?: string, confirmLabel?: string}} matching
 * @param {(reason: AdminReason) => void} onConfirm
 */
export function confirmMatching(modal, { total, conditions, warnings = [], narrowed, title, confirmLabel }, onConfirm) {
  const body = narrowed
    ? [el("p", {}, "Matching:"), el("ul", { class: "condition-list" }, conditions.map((c) => el("li", {}, c)))]
    : [el("p", { class: "warning" }, "No search or filter is set: every active session of this instance will be ended.")];
  for (const warning of warnings) body.push(el("p", { class: "warning" }, warning));
  body.push(el("p", { class: "hint" }, "Sessions that start after this count are not ended."));
  confirmDialog(modal, {
    title: title ?? `Terminate all ${plural(total, "matching session")}?`,
    description: `${plural(total, "session")} ${total === 1 ? "matches" : "match"} right now. ${UNDO_WARNING}`,
    body,
    confirmLabel: confirmLabel ?? `Terminate ${plural(total, "session")}`,
    onConfirm,
    typeToConfirm: narrowed ? null : total,
  });
}

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Send the termination request and poll its status until the registry applied it.
 * Resolves {applied: true, terminated}; {applied: false, failed: true, terminated, commandId}
 * once the registry gave it up (`terminated`: what it ended before); {applied: false,
 * commandId, unread} when it was accepted and its status could then not be read (`unread`:
 * why: a refusal at once, a lost answer or a 5xx once they lasted until the deadline); or
 * {applied: false, commandId} after the deadline. Rejects with the POST's error:
 * nothing was accepted, or, when `outcomeUnknown` says so, the answer is not known.
 * `key` names the request (`Idempotency-Key`): the caller sends it again with the same key.
 * `onProgress` is told how many sessions a pending termination ended so far (one by a search
 * is applied in chunks), each time that count grows.
 * @param {Api} api
 * @param {TerminationTarget} target
 * @param {string} key
 * @param {(ended: number) => void} [onProgress]
 * @returns {Promise<{applied: true, terminated: number} | {applied: false, failed: true, terminated: number, commandId: string} | {applied: false, failed?: undefined, commandId: string, unread?: unknown}>}
 */
export async function runTermination(api, target, key, onProgress) {
  const accepted = await api.terminate(target, key);
  const deadline = Date.now() + POLL_DEADLINE_MS;
  let delay = 200;
  let told = 0;
  /** @type {unknown} why the last reading of the status failed (undefined: it did not) */
  let unread;
  while (Date.now() < deadline) {
    let status;
    try {
      status = await api.terminationStatus(accepted.command_id);
      unread = undefined;
    } catch (error) {
      unread = error;
      // accepted all the same; a lost answer or a 5xx (a failover) is read again
      if (!(error instanceof ApiError) || (error.status !== 0 && error.status < 500)) break;
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
      continue;
    }
    if (status.status === "applied") return { applied: true, terminated: status.terminated };
    if (status.status === "failed") {
      return { applied: false, failed: true, terminated: status.terminated, commandId: accepted.command_id };
    }
    if (onProgress && status.terminated > told) {
      told = status.terminated;
      onProgress(told);
    }
    await sleep(delay);
    delay = Math.min(delay * 1.5, 2000);
  }
  return unread === undefined ? { applied: false, commandId: accepted.command_id } : { applied: false, commandId: accepted.command_id, unread };
}
