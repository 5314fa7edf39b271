// @ts-check
// Keeping keyboard focus on the same control when the table is rendered again (sort, live mode).

/**
 * Which control had focus: in which row (by session id) or header (by column), of which class.
 * @typedef {{sessionId: string | null, column: string | null, className: string}} FocusedControl
 */

/**
 * Which row (or header) control has focus inside `table`, or null.
 * @param {HTMLElement} table
 * @returns {FocusedControl | null}
 */
export function describeFocus(table) {
  const active = document.activeElement;
  if (!(active instanceof HTMLElement) || !table.contains(active)) return null;
  const row = active.closest("tr[data-session-id]");
  const th = active.closest("th[data-column]");
  return {
    sessionId: row instanceof HTMLElement ? (row.dataset.sessionId ?? null) : null,
    column: th instanceof HTMLElement ? (th.dataset.column ?? null) : null,
    className: active.className.split(" ")[0] ?? "",
  };
}

/**
 * Focus the same kind of control in the same row or column again, when it still exists.
 * @param {FocusedControl | null} focused
 * @param {HTMLElement} body
 * @param {HTMLElement} headerRow
 */
export function restoreFocus(focused, body, headerRow) {
  if (!focused || !focused.className) return;
  let scope = null;
  if (focused.sessionId) scope = body.querySelector(`tr[data-session-id="${CSS.escape(focused.sessionId)}"]`);
  else if (focused.column) scope = headerRow.querySelector(`th[data-column="${CSS.escape(focused.column)}"]`);
  const target = scope ? scope.querySelector(`.${CSS.escape(focused.className)}`) : null;
  if (target instanceof HTMLElement) target.focus();
}
