// @ts-check
// The Columns dialog: show or hide the optional columns.
import { dialogButton } from "./dialogs.js";
import { el, inputOf } from "./dom.js";

/** @typedef {import("./columns.js").ColumnChoice} ColumnChoice */
/** @typedef {import("./dialogs.js").Modal} Modal */

/**
 * Open the Columns dialog; `onChange()` runs after each change (the choice is already saved).
 * @param {Modal} modal
 * @param {ColumnChoice} choice
 * @param {() => void} onChange
 */
export function openColumnsDialog(modal, choice, onChange) {
  const summary = el("p", { class: "muted", "aria-live": "polite" }, choice.summary());
  const boxes = choice.columns.map((column) => {
    const box = el("input", {
      type: "checkbox",
      id: `column-${column.key}`,
      checked: choice.isVisible(column.key),
      disabled: column.required,
      onchange: (event) => {
        choice.set(column.key, inputOf(event).checked);
        summary.textContent = choice.summary();
        onChange();
      },
    });
    return el(
      "label",
      { for: box.id, class: "choice-item" },
      box,
      column.label,
      column.required ? el("span", { class: "muted" }, " (always shown)") : null,
    );
  });
  const always = choice.columns.filter((c) => c.required).map((c) => c.label);
  const kept = always.length ? ` ${always.join(" and ")} ${always.length === 1 ? "is" : "are"} always shown.` : "";
  modal.open({
    title: "Columns",
    description: `Choose the columns of the Active User Sessions list.${kept}`,
    body: [el("fieldset", { class: "choice" }, el("legend", { class: "visually-hidden" }, "Visible columns"), boxes), summary],
    actions: [dialogButton("Done", () => modal.close(), "button-primary")],
  });
}
