// Keeping keyboard focus on the same control when the table is rendered again (sort, live mode).

/** Which row (or header) control has focus inside `table`, or null. */
export function describeFocus(table) {
  const active = document.activeElement;
  if (!active || !table.contains(active)) return null;
  const row = active.closest("tr[data-session-id]");
  const th = active.closest("th[data-column]");
  return {
    sessionId: row ? row.dataset.sessionId : null,
    column: th ? th.dataset.column : null,
    className: active.className.split(" ")[0],
  };
}

/** Focus the same kind of control in the same row or column again, when it still exists. */
export function restoreFocus(focused, body, headerRow) {
  if (!focused || !focused.className) return;
  let scope = null;
  if (focused.sessionId) scope = body.querySelector(`tr[data-session-id="${CSS.escape(focused.sessionId)}"]`);
  else if (focused.column) scope = headerRow.querySelector(`th[data-column="${CSS.escape(focused.column)}"]`);
  const target = scope ? scope.querySelector(`.${CSS.escape(focused.className)}`) : null;
  if (target) target.focus();
}
