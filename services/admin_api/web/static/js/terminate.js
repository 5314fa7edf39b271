// @ts-check
// Ending sessions: the confirmation dialogs, the request, and waiting until the registry applied it.
import { dialogButton } from "./dialogs.js";
import { el, plural } from "./dom.js";
import { typeLabel } from "./presentation.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").SessionItem} SessionItem */
/** @typedef {import("./api.js").TerminationTarget} TerminationTarget */
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
          el("tr", {}, el("td", {}, s.user_name), el("td", {}, typeLabel(s.session_type)), el("td", { class: "mono" }, s.session_id)),
        ),
      ),
    ),
  );
}

/**
 * @param {Modal} modal
 * @param {{title: string, description: string, body: Child[], confirmLabel: string, onConfirm: () => void}} content
 */
function confirmDialog(modal, { title, description, body, confirmLabel, onConfirm }) {
  const cancel = dialogButton("Cancel", () => modal.close());
  const confirm = dialogButton(
    confirmLabel,
    () => {
      modal.close();
      onConfirm();
    },
    "button-danger",
  );
  // Cancel has focus first: Enter on an unread dialog must not end anyone's session.
  modal.open({ title, description, body, actions: [confirm, cancel], initialFocus: cancel, wide: true });
}

/**
 * Confirm ending the selected sessions: lists name, type and id of each.
 * @param {Modal} modal
 * @param {SessionItem[]} sessions
 * @param {() => void} onConfirm
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
 * Confirm ending every session matching the current search and filters, with their count.
 * @param {Modal} modal
 * @param {{total: number, conditions: string[]}} matching
 * @param {() => void} onConfirm
 */
export function confirmMatching(modal, { total, conditions }, onConfirm) {
  const body = conditions.length
    ? [el("p", {}, "Matching:"), el("ul", { class: "condition-list" }, conditions.map((c) => el("li", {}, c)))]
    : [el("p", { class: "warning" }, "No search or filter is set: every active session of this instance will be ended.")];
  confirmDialog(modal, {
    title: `Terminate all ${plural(total, "matching session")}?`,
    description: `${plural(total, "session")} match the current search and filters. ${UNDO_WARNING}`,
    body,
    confirmLabel: `Terminate ${plural(total, "session")}`,
    onConfirm,
  });
}

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Send the termination request and poll its status until the registry applied it.
 * Resolves {applied: true, terminated} or {applied: false, commandId} after the deadline.
 * @param {Api} api
 * @param {TerminationTarget} target
 * @returns {Promise<{applied: true, terminated: number} | {applied: false, commandId: string}>}
 */
export async function runTermination(api, target) {
  const accepted = await api.terminate(target);
  const deadline = Date.now() + POLL_DEADLINE_MS;
  let delay = 200;
  while (Date.now() < deadline) {
    const status = await api.terminationStatus(accepted.command_id);
    if (status.status === "applied") return { applied: true, terminated: status.terminated };
    await sleep(delay);
    delay = Math.min(delay * 1.5, 2000);
  }
  return { applied: false, commandId: accepted.command_id };
}
